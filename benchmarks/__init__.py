"""The benchmark report, the package's main job: `python -m benchmarks [kernels|separable|networks]`.

  layers.py          DESIGN.md's benchmark layer set, as data
  timing.py          warm-up, interleaved rounds, medians, IQR, paired ratios
  peak.pyx / peak.h  the machine's measured ceilings (FMA peak, cache and DRAM bandwidth)
  roofline.py        FLOPs, minimum bytes, intensity, min(peak, intensity x bandwidth)
  machine.py         CPU, BLAS, versions, load; the CPU ceilings
  backends.py        CPU (perf_counter) or CUDA (events) and PyTorch's baseline on the same device
  gpu_peak.py        the GPU's FMA peak and copy bandwidth through CuPy
  suite_*.py         the three suites; tables.py, plots.py and report.py present their results
  test_bench_*.py    the same ground as pytest-benchmark suites (`pytest benchmarks`)
"""
