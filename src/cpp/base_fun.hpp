// The layer's base function (BaseFun::kSilu) as torch computes it.  Included inside one
// namespace per instruction set (kernels_isa.cpp): builtins, no std templates.
#pragma once

inline float exp_of(float v) { return __builtin_expf(v); }
inline double exp_of(double v) { return __builtin_exp(v); }

// SiLU as torch computes it (x / (1 + exp(-x))), and its derivative.
template <typename T>
inline T silu(T x) { return x / (T(1) + exp_of(-x)); }

template <typename T>
inline void silu_and_grad(T x, T* value, T* grad) {
  const T sig = T(1) / (T(1) + exp_of(-x));
  *value = x * sig;
  *grad = sig * (T(1) + x * (T(1) - sig));
}
