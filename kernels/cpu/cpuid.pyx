"""What this CPU supports, from CPUID (GCC's __builtin_cpu_supports, which also checks that the OS
saves the wider registers). Compiled for the baseline ISA only, so it runs on any x86-64 before a
kernel variant is chosen."""

cdef extern from *:
    """
    #if defined(__x86_64__) || defined(__i386__)
    #define CF_X86 1
    static int cf_supports(const char *name)
    {
        __builtin_cpu_init();
        /* __builtin_cpu_supports needs a string literal: one branch per name we ask about */
        #define CF_ASK(lit) if (!__builtin_strcmp(name, lit)) return __builtin_cpu_supports(lit) != 0;
        CF_ASK("x86-64-v4") CF_ASK("x86-64-v3") CF_ASK("x86-64-v2") CF_ASK("x86-64")
        CF_ASK("sse4.2") CF_ASK("avx") CF_ASK("avx2") CF_ASK("fma") CF_ASK("bmi2") CF_ASK("f16c")
        CF_ASK("avx512f") CF_ASK("avx512bw") CF_ASK("avx512dq") CF_ASK("avx512vl") CF_ASK("avx512cd")
        CF_ASK("avx512vnni") CF_ASK("avx512bf16") CF_ASK("avx512ifma") CF_ASK("avx512vbmi")
        #undef CF_ASK
        return -1;
    }
    /* 1: Intel, 2: AMD, 0: another vendor */
    static int cf_vendor(void)
    {
        __builtin_cpu_init();
        return __builtin_cpu_is("intel") ? 1 : (__builtin_cpu_is("amd") ? 2 : 0);
    }
    #else
    #define CF_X86 0
    static int cf_supports(const char *name) { (void)name; return 0; }
    static int cf_vendor(void) { return 0; }
    #endif
    """
    int CF_X86
    int cf_supports(const char *name) nogil
    int cf_vendor() nogil

FLAGS = ("sse4.2", "avx", "avx2", "fma", "bmi2", "f16c", "avx512f", "avx512bw", "avx512dq",
         "avx512vl", "avx512cd", "avx512vnni", "avx512bf16", "avx512ifma", "avx512vbmi")


def is_x86():
    return bool(CF_X86)


def supports(str name):
    """True when the CPU (and the OS) supports a feature or an x86-64 level such as 'x86-64-v4'."""
    cdef int r = cf_supports(name.encode())
    if r < 0:
        raise ValueError(f"unknown CPU feature {name!r}")
    return bool(r)


def vendor():
    """'intel', 'amd', or 'other' (what CPUID's vendor string says)."""
    return ("other", "intel", "amd")[cf_vendor()]


def flags():
    """The features of FLAGS that this CPU supports."""
    return [f for f in FLAGS if supports(f)]
