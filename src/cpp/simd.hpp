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

// lane_sum(v): the pairwise lane sum of a 16-, 32- or 64-byte vector in one fixed order
// (lane l += lane l + L/2, then l + L/4, ...), in shuffles and adds: a loop over a stack
// copy of the lanes compiled to store-forwarded scalar adds, ~45% of the backward at
// out = 16.
typedef float f32x4 __attribute__((vector_size(16)));
typedef float f32x8 __attribute__((vector_size(32)));
typedef double f64x2 __attribute__((vector_size(16)));
typedef double f64x4 __attribute__((vector_size(32)));
PYKAN_INLINE float lane_sum(f32x4 v) { return (v[0] + v[2]) + (v[1] + v[3]); }
PYKAN_INLINE float lane_sum(f32x8 v) {
  return lane_sum(__builtin_shufflevector(v, v, 0, 1, 2, 3) +
                  __builtin_shufflevector(v, v, 4, 5, 6, 7));
}
PYKAN_INLINE float lane_sum(f32v v) {
  return lane_sum(__builtin_shufflevector(v, v, 0, 1, 2, 3, 4, 5, 6, 7) +
                  __builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15));
}
PYKAN_INLINE double lane_sum(f64x2 v) { return v[0] + v[1]; }
PYKAN_INLINE double lane_sum(f64x4 v) {
  return lane_sum(__builtin_shufflevector(v, v, 0, 1) + __builtin_shufflevector(v, v, 2, 3));
}
PYKAN_INLINE double lane_sum(f64v v) {
  return lane_sum(__builtin_shufflevector(v, v, 0, 1, 2, 3) +
                  __builtin_shufflevector(v, v, 4, 5, 6, 7));
}

// Vec<T>::V the vector, U its unaligned alias, L its lanes, hsum its lane_sum.
template <typename T> struct Vec;
template <> struct Vec<float> {
  using V = f32v;
  using U = f32v_u;
  static constexpr int L = 16;
  static PYKAN_INLINE float hsum(V v) { return lane_sum(v); }
};
template <> struct Vec<double> {
  using V = f64v;
  using U = f64v_u;
  static constexpr int L = 8;
  static PYKAN_INLINE double hsum(V v) { return lane_sum(v); }
};

// Row passes (row_passes.hpp) work at the register's native width and size their
// register blocks to the register file: under AVX2 the 64-byte V above is two ymm, and
// blocks sized for AVX-512's 32 zmm spilled to the stack (forward 3.9x, backward 6.6x
// the useful-work GEMM on a Zen 3).
#if defined(__AVX512F__)
#define PYKAN_ROW_BYTES 64
constexpr int kVectorRegisters = 32;
#elif defined(__AVX__)
#define PYKAN_ROW_BYTES 32
constexpr int kVectorRegisters = 16;
#else
#define PYKAN_ROW_BYTES 16
constexpr int kVectorRegisters = 16;
#endif

typedef float f32r __attribute__((vector_size(PYKAN_ROW_BYTES)));
typedef float f32r_u __attribute__((vector_size(PYKAN_ROW_BYTES), aligned(4), may_alias));
typedef double f64r __attribute__((vector_size(PYKAN_ROW_BYTES)));
typedef double f64r_u __attribute__((vector_size(PYKAN_ROW_BYTES), aligned(8), may_alias));

template <typename T> struct RowTypes;
template <> struct RowTypes<float> { using V = f32r; using U = f32r_u; };
template <> struct RowTypes<double> { using V = f64r; using U = f64r_u; };

// Row<T>::V one register, L its lanes, hsum its lane_sum.
template <typename T>
struct Row {
  using V = typename RowTypes<T>::V;
  using U = typename RowTypes<T>::U;
  static constexpr int L = PYKAN_ROW_BYTES / sizeof(T);
  static PYKAN_INLINE V load(const T* p) { return *reinterpret_cast<const U*>(p); }
  static PYKAN_INLINE void store(T* p, V v) { *reinterpret_cast<U*>(p) = v; }
  static PYKAN_INLINE V broadcast(T s) { return V{} + s; }
  static PYKAN_INLINE T hsum(V v) { return lane_sum(v); }
};

// Makes v live in a register: GCC otherwise folds a vector shared by M samples into M
// memory operands, and the row passes are bound by loads, not multiply-adds.
template <typename V>
PYKAN_INLINE void in_register(V& v) {
#if defined(__x86_64__) || defined(__i386__)
  asm("" : "+v"(v));
#elif defined(__aarch64__)
  asm("" : "+w"(v));
#else
  (void)v;
#endif
}

// The most samples of one knot span a row pass takes at once: kPerSample registers per
// sample (coefficients or accumulators, one per row) plus kFixed shared ones must fit.
constexpr int span_group(int per_sample, int fixed) {
  return 4 * per_sample + fixed <= kVectorRegisters   ? 4
         : 3 * per_sample + fixed <= kVectorRegisters ? 3
         : 2 * per_sample + fixed <= kVectorRegisters ? 2
                                                      : 1;
}

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
