// Float32 reference kernels. These are the correctness oracle for faster paths: keep them simple.
#pragma once

#include <cstdint>

namespace plm {

// c[m, n] = a[m, k] · b[n, k]^T (+ bias[n] when non-null). Row-major; b is a PyTorch Linear weight.
void GemmF32(const float* a, const float* b, const float* bias, float* c, int64_t m, int64_t n,
             int64_t k);

// c[m, n] = a[m, k] · b[k, n]. Row-major.
void GemmF32NN(const float* a, const float* b, float* c, int64_t m, int64_t n, int64_t k);

// Sets the thread count of the BLAS library behind GemmF32.
void SetBlasThreads(int n);

// y = (x - mean) / sqrt(var + eps) * w + b, per row of length d (biased variance, like torch).
void LayerNorm(const float* x, const float* w, const float* b, float eps, float* y, int64_t rows,
               int64_t d);

// y = w * x / sqrt(mean(x^2) + eps), per row of length d.
void RmsNorm(const float* x, const float* w, float eps, float* y, int64_t rows, int64_t d);

// Exact GELU 0.5 x (1 + erf(x / sqrt 2)), in place.
void GeluErfInPlace(float* x, int64_t n);

// SiLU x * sigmoid(x), in place.
void SiluInPlace(float* x, int64_t n);

// Softmax over a row of length n, in place (max-subtracted).
void SoftmaxInPlace(float* x, int64_t n);

}  // namespace plm
