// 64-byte SIMD vectors (GCC vector extensions) and the kernels' raw buffers.  One zmm with
// AVX-512, two ymm with AVX2, four xmm in the baseline build: explicit vectors keep the
// hot loops from being scalarised.  Included inside one namespace per instruction set
// (kernels_isa.cpp), so nothing here instantiates a std template: one instantiated with
// AVX-512 flags could be merged by the linker into the baseline build.
#pragma once

typedef float f32v __attribute__((vector_size(64)));
typedef float f32v_u __attribute__((vector_size(64), aligned(4), may_alias));
typedef double f64v __attribute__((vector_size(64)));
typedef double f64v_u __attribute__((vector_size(64), aligned(8), may_alias));

// Vec<T>::V the vector, U its unaligned alias, L its lanes, hsum a fixed-order lane sum.
template <typename T> struct Vec;
template <> struct Vec<float> {
  using V = f32v;
  using U = f32v_u;
  static constexpr int L = 16;
  static float hsum(V v) {
    typedef float h8 __attribute__((vector_size(32)));
    typedef float h4 __attribute__((vector_size(16)));
    h8 a = __builtin_shufflevector(v, v, 0, 1, 2, 3, 4, 5, 6, 7) +
           __builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15);
    h4 b = __builtin_shufflevector(a, a, 0, 1, 2, 3) + __builtin_shufflevector(a, a, 4, 5, 6, 7);
    return (b[0] + b[2]) + (b[1] + b[3]);
  }
};
template <> struct Vec<double> {
  using V = f64v;
  using U = f64v_u;
  static constexpr int L = 8;
  static double hsum(V v) {
    typedef double h4 __attribute__((vector_size(32)));
    h4 a = __builtin_shufflevector(v, v, 0, 1, 2, 3) + __builtin_shufflevector(v, v, 4, 5, 6, 7);
    return (a[0] + a[2]) + (a[1] + a[3]);
  }
};

template <typename T>
inline typename Vec<T>::V vload(const T* p) {
  return *reinterpret_cast<const typename Vec<T>::U*>(p);
}
template <typename T>
inline void vstore(T* p, typename Vec<T>::V v) {
  *reinterpret_cast<typename Vec<T>::U*>(p) = v;
}
template <typename T>
inline typename Vec<T>::V vbroadcast(T s) {
  return typename Vec<T>::V{} + s;
}

template <typename T>
T* alloc_array(int64_t n) {
  return static_cast<T*>(__builtin_malloc(sizeof(T) * (n > 0 ? n : 1)));
}

template <typename T>
void zero_array(T* a, int64_t n) {
  for (int64_t i = 0; i < n; ++i) a[i] = T(0);
}
