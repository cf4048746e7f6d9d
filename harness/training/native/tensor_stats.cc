// BugbenchTensorStats: the per-tensor statistics of the probe in one op.
//
// On the small models of the benchmark a training step is a few hundred tiny ops, and what a
// probe costs is its op count: five reductions and their helpers per tensor group, about
// 90-170 ops per step, made a probed fit 1.5x a plain one. This op computes every statistic of
// every probed tensor in one kernel call.
//
// Inputs: `tensors` (N float32 tensors) and M pairs `after`/`before` whose difference is a
// tensor too (a weight update, never materialised). Output: [N + M, 7] float32 rows of mean,
// std, min, max, zero fraction, NaN count, Inf count, in input order (pairs last). Min and max
// are over the finite values; a NaN or Inf propagates into mean and std.
//
// One pass over the data, about a shift near the mean. Blocks of 256 values are summed in float
// lanes, the blocks in double; fixed chunks are combined in chunk order, so the result is the
// same whatever the thread pool's split (deterministic, as the harness requires).

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/framework/tensor.h"
#include "tensorflow/core/platform/threadpool.h"

namespace {

using tensorflow::OpKernel;
using tensorflow::OpKernelConstruction;
using tensorflow::OpKernelContext;
using tensorflow::OpInputList;
using tensorflow::Tensor;
using tensorflow::TensorShape;

constexpr int64_t kChunk = 1 << 15;  // elements per partial result
constexpr int kStats = 7;
constexpr int64_t kShareAbove = int64_t{1} << 20;  // elements worth sharing among threads

struct Partial {
  double sum = 0, ss = 0;  // of the values minus the row's shift
  float lo = std::numeric_limits<float>::infinity();
  float hi = -std::numeric_limits<float>::infinity();
  int64_t zeros = 0, nan = 0, inf = 0;
};

// One stretch of a tensor: its values are a[i], or a[i] - b[i] where b is set.
struct Span {
  const float* a;
  const float* b;
  int64_t n;
};

constexpr int kLanes = 8;  // independent accumulators: no add waits for the one before it
constexpr int64_t kHead = 64;  // values whose mean shifts the sums

// Four floats (ints) as one value, the width of the SSE registers every x86-64 CPU has (and of
// NEON's): GCC and Clang compile arithmetic, comparisons and selects on them to single SIMD
// instructions. The kLanes lanes are two such values. Measured on the small MLP's tensors of
// bench/overhead.py (72K elements a step), a call took 127 us with a plain loop over the lanes,
// which the compiler left scalar, and 41 us with quads; 8-float vectors, which a target without
// AVX splits into scalar compares and selects, took 323 us. An AVX2 path (8-float vectors, chosen
// at run time) halved the pass on data in cache but made no difference to a call inside a step.
typedef float Quad __attribute__((vector_size(4 * sizeof(float))));
typedef int32_t QuadCount __attribute__((vector_size(4 * sizeof(int32_t))));
static_assert(kLanes == 8, "the lanes are two quads");

template <bool kDiff>
inline float value(const Span& s, int64_t i) {
  return kDiff ? s.a[i] - s.b[i] : s.a[i];
}

template <bool kDiff>
inline Quad quad(const Span& s, int64_t i) {
  Quad a, b;
  std::memcpy(&a, s.a + i, sizeof a);  // unaligned loads
  if (!kDiff) return a;
  std::memcpy(&b, s.b + i, sizeof b);
  return a - b;
}

// Lanes 4h..4h+3 of a block: the sums, min, max and zero counts of every kLanes-th value.
struct Half {
  Quad lo, hi;
  QuadCount zeros;
  void take(Quad v, Quad shifts, Quad* sum, Quad* ss) {
    const Quad d = v - shifts;
    *sum += d;
    *ss += d * d;
    lo = v < lo ? v : lo;
    hi = v > hi ? v : hi;
    zeros -= v == 0.0f;  // a true comparison is -1
  }
};

// One pass: sums of d = x - shift and of d * d (the shift, near the mean, keeps the variance
// free of cancellation), min, max, zeros. Blocks of kBlock values are summed in float
// lanes, and the blocks' sums in double.
template <bool kDiff>
void one_pass(const Span& s, float shift, Partial* p) {
  constexpr int kBlock = 32 * kLanes;
  constexpr float kInf = std::numeric_limits<float>::infinity();
  double sum = 0, ss = 0;
  const Quad shifts = Quad{} + shift;
  Half half[2];  // a chunk has fewer than 2^31 elements: the counts fit
  for (Half& h : half) h = {Quad{} + kInf, Quad{} - kInf, QuadCount{}};
  int64_t i = 0;
  for (; i + kBlock <= s.n; i += kBlock) {
    Quad bsum[2] = {}, bss[2] = {};
    for (int j = 0; j < kBlock; j += kLanes) {
      half[0].take(quad<kDiff>(s, i + j), shifts, &bsum[0], &bss[0]);
      half[1].take(quad<kDiff>(s, i + j + 4), shifts, &bsum[1], &bss[1]);
    }
    for (int l = 0; l < kLanes; ++l) {
      sum += bsum[l / 4][l % 4];
      ss += bss[l / 4][l % 4];
    }
  }
  float lo1 = kInf, hi1 = -kInf;
  int64_t zeros1 = 0;
  for (; i < s.n; ++i) {
    const float v = value<kDiff>(s, i);
    const double d = static_cast<double>(v) - shift;
    sum += d;
    ss += d * d;
    lo1 = v < lo1 ? v : lo1;
    hi1 = v > hi1 ? v : hi1;
    zeros1 += v == 0.0f;
  }
  p->sum = sum;
  p->ss = ss;
  p->zeros = zeros1;
  p->lo = lo1;
  p->hi = hi1;
  for (int l = 0; l < kLanes; ++l) {
    p->zeros += half[l / 4].zeros[l % 4];
    p->lo = std::min(p->lo, half[l / 4].lo[l % 4]);
    p->hi = std::max(p->hi, half[l / 4].hi[l % 4]);
  }
  if (std::isfinite(p->ss)) return;
  // A NaN or Inf somewhere in this stretch (rare), or a value beyond float's square root of its
  // largest: count NaN and Inf, and take min/max of the rest.
  p->lo = std::numeric_limits<float>::infinity();
  p->hi = -p->lo;
  for (i = 0; i < s.n; ++i) {
    const float v = value<kDiff>(s, i);
    if (std::isnan(v)) {
      ++p->nan;
    } else if (std::isinf(v)) {
      ++p->inf;
    } else {
      p->lo = std::min(p->lo, v);
      p->hi = std::max(p->hi, v);
    }
  }
}

// The shift: the mean of the first finite values, near the tensor's mean unless the data are
// sorted, so sums of squares of x - shift lose nothing to cancellation.
float head_mean(const Span& s) {
  double sum = 0;
  int count = 0;
  for (int64_t i = 0; i < std::min<int64_t>(s.n, kHead); ++i) {
    const float v = s.b ? value<true>(s, i) : value<false>(s, i);
    if (std::isfinite(v)) {
      sum += v;
      ++count;
    }
  }
  return count ? static_cast<float>(sum / count) : 0.0f;
}

void one_pass(const Span& s, float shift, Partial* p) {
  s.b ? one_pass<true>(s, shift, p) : one_pass<false>(s, shift, p);
}

class TensorStatsOp : public OpKernel {
 public:
  explicit TensorStatsOp(OpKernelConstruction* c) : OpKernel(c) {}

  // Run inline by the thread that made the inputs ready: handing a step's last op to another
  // thread was measured to cost more than the op on small models (large inputs are shared
  // among the pool's threads inside Compute).
  bool IsExpensive() override { return false; }

  void Compute(OpKernelContext* ctx) override {
    OpInputList tensors, after, before;
    OP_REQUIRES_OK(ctx, ctx->input_list("tensors", &tensors));
    OP_REQUIRES_OK(ctx, ctx->input_list("after", &after));
    OP_REQUIRES_OK(ctx, ctx->input_list("before", &before));
    std::vector<Span> whole;  // one per output row
    for (int t = 0; t < tensors.size(); ++t) {
      whole.push_back({tensors[t].flat<float>().data(), nullptr, tensors[t].NumElements()});
    }
    for (int t = 0; t < after.size(); ++t) {
      OP_REQUIRES(ctx, after[t].shape() == before[t].shape(),
                  tensorflow::errors::InvalidArgument("after and before differ in shape at pair ", t));
      whole.push_back({after[t].flat<float>().data(), before[t].flat<float>().data(), after[t].NumElements()});
    }
    Tensor* out = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({static_cast<int64_t>(whole.size()), kStats}), &out));
    Fill(ctx, whole, out->matrix<float>());
  }

 private:
  template <typename Matrix>
  void Fill(OpKernelContext* ctx, const std::vector<Span>& whole, Matrix o) {
    std::vector<Span> items;  // chunks of every row, in row order
    std::vector<int64_t> first;
    for (const Span& s : whole) {
      first.push_back(items.size());
      int64_t start = 0;
      do {
        const int64_t n = std::min(kChunk, s.n - start);
        items.push_back({s.a + start, s.b ? s.b + start : nullptr, n});
        start += kChunk;
      } while (start < s.n);
    }
    first.push_back(items.size());
    std::vector<Partial> parts(items.size());
    std::vector<float> shift(whole.size());
    std::vector<int> row_of(items.size());
    for (size_t r = 0; r < whole.size(); ++r) {
      shift[r] = head_mean(whole[r]);
      for (int64_t i = first[r]; i < first[r + 1]; ++i) row_of[i] = static_cast<int>(r);
    }
    // Waking the pool's threads costs more than a few chunks' work: share only larger inputs.
    auto pass = [&](int64_t a, int64_t b) {
      for (int64_t i = a; i < b; ++i) one_pass(items[i], shift[row_of[i]], &parts[i]);
    };
    int64_t total = 0;  // elements, not chunks: a deep stack of small tensors is many chunks, little work
    for (const Span& s : whole) total += s.n;
    if (total < kShareAbove) {
      pass(0, items.size());
    } else {
      ctx->device()->tensorflow_cpu_worker_threads()->workers->ParallelFor(items.size(), kChunk * 6, pass);
    }
    for (size_t r = 0; r < whole.size(); ++r) {
      Partial s;  // the chunks combined in order: the same bits whatever the pool did
      for (int64_t i = first[r]; i < first[r + 1]; ++i) {
        const Partial& p = parts[i];
        s.sum += p.sum;
        s.ss += p.ss;
        s.zeros += p.zeros;
        s.nan += p.nan;
        s.inf += p.inf;
        s.lo = std::min(s.lo, p.lo);
        s.hi = std::max(s.hi, p.hi);
      }
      const double n = static_cast<double>(whole[r].n);
      const double mean_d = s.sum / n;  // mean of x - shift; NaN for an empty tensor
      double var = s.ss / n - mean_d * mean_d;
      if (var < 0) var = 0;  // rounding (a NaN stays)
      if (s.nan || s.inf) var = NAN;  // as (x - mean)^2 gives
      o(r, 0) = static_cast<float>(shift[r] + mean_d);
      o(r, 1) = static_cast<float>(std::sqrt(var));
      o(r, 2) = s.lo;
      o(r, 3) = s.hi;
      o(r, 4) = static_cast<float>(static_cast<double>(s.zeros) / n);
      o(r, 5) = static_cast<float>(s.nan);
      o(r, 6) = static_cast<float>(s.inf);
    }
  }
};

}  // namespace

REGISTER_OP("BugbenchTensorStats")
    .Input("tensors: N * float")
    .Input("after: M * float")
    .Input("before: M * float")
    .Output("stats: float")
    .Attr("N: int >= 0")
    .Attr("M: int >= 0")
    .SetShapeFn([](tensorflow::shape_inference::InferenceContext* c) {
      int n, m;
      TF_RETURN_IF_ERROR(c->GetAttr("N", &n));
      TF_RETURN_IF_ERROR(c->GetAttr("M", &m));
      c->set_output(0, c->Matrix(n + m, kStats));
      return absl::OkStatus();
    });

REGISTER_KERNEL_BUILDER(Name("BugbenchTensorStats").Device(tensorflow::DEVICE_CPU), TensorStatsOp);
