# Instruction sets of the per-level kernel files; included by extension/Makefile and read by
# devtools/kernels_build.py (the standalone kernel build for tests and benchmarks) and by the top-level
# Makefile's sanitize target.
AVX2_FLAGS = -mavx2 -mfma -mf16c -mpopcnt
AVX512_FLAGS = -mavx512f -mavx512bw -mavx512vl -mavx512vpopcntdq -mf16c -mfma -mpopcnt
