"""Build the compiled core of lrn-core.

All build choices are made here, and each can be overridden from the environment:

    LRN_CORE_NO_OPENMP=1     build without OpenMP (single-threaded kernels)
    LRN_CORE_NO_AVX2=1       do not build the AVX2/FMA variant of the kernels
    LRN_CORE_MARCH=native    compile the baseline kernels with -march=<value> (not portable:
                             a wheel built so crashes on older CPUs)
    LRN_CORE_NO_LIBMVEC=1    do not use glibc's vector pow for float64 generic betas (AVX2 build)
    LRN_CORE_CFLAGS="..."    extra compiler flags, appended last

The kernels (the Cython driver ``src/lrn_core/_kernels.pyx`` and the C kernels in
``src/lrn_core/_simd/``) are always built with the platform's baseline instruction set (x86-64:
SSE2), so a wheel runs on any CPU. On x86-64 the same sources are compiled a second time with
``-mavx2 -mfma`` into ``lrn_core._kernels_avx2``; at import the package loads that variant only if
the CPU reports AVX2 and FMA (see ``src/lrn_core/_dispatch.py``). OpenMP is enabled when the
compiler builds and links a tiny OpenMP program with ``-fopenmp``; otherwise the build goes on
without it and prints a warning.
"""

import os
import platform
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import textwrap

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

OPENMP_TEST = textwrap.dedent(
    """
    #include <omp.h>
    #include <stdio.h>
    int main(void) {
        int n = 0;
        #pragma omp parallel reduction(+:n)
        n += 1;
        printf("%d\\n", n > 0);
        return 0;
    }
    """
)


LIBMVEC_TEST = textwrap.dedent(
    """
    #include <immintrin.h>
    __m256d _ZGVdN4vv_pow(__m256d, __m256d);
    int main(void) {
        double out[4];
        _mm256_storeu_pd(out, _ZGVdN4vv_pow(_mm256_set1_pd(2.0), _mm256_set1_pd(-0.5)));
        return out[0] > 0.70 && out[0] < 0.71 ? 0 : 1;
    }
    """
)


def _flag(name):
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no")


def _runs(compiler, source, cflags=(), ldflags=(), libraries=()):
    """Compile, link and run a tiny C program; its standard output, or None if any step fails
    or it exits non-zero (the probes behind each optional build feature)."""
    tmp = tempfile.mkdtemp(prefix="lrn_core_probe_")
    try:
        src = os.path.join(tmp, "probe.c")
        with open(src, "w") as f:
            f.write(source)
        objs = compiler.compile([src], output_dir=tmp, extra_postargs=list(cflags))
        exe = os.path.join(tmp, "probe")
        compiler.link_executable(objs, exe, extra_postargs=list(ldflags), libraries=list(libraries))
        out = subprocess.run([exe], capture_output=True, text=True, timeout=60)
        return out.stdout if out.returncode == 0 else None
    except Exception:
        return None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _compiler_accepts_openmp(compiler):
    """A tiny OpenMP program builds and runs with -fopenmp."""
    out = _runs(compiler, OPENMP_TEST, cflags=["-fopenmp"], ldflags=["-fopenmp"])
    return out is not None and out.strip() == "1"


def _links_libmvec(compiler):
    """glibc's vector maths library (AVX2 pow, 4 doubles at a time) links and runs."""
    return (
        _runs(compiler, LIBMVEC_TEST, cflags=["-mavx2", "-mfma"], libraries=["mvec", "m"])
        is not None
    )


class BuildExt(build_ext):
    def finalize_options(self):
        super().finalize_options()
        # Flags depend on the environment (LRN_CORE_*): never reuse objects of another build.
        self.force = True

    def build_extension(self, ext):
        # Both variants compile the same C kernels with different flags: keep their objects apart.
        build_temp = self.build_temp
        self.build_temp = os.path.join(build_temp, ext.name)
        try:
            super().build_extension(ext)
        finally:
            self.build_temp = build_temp

    def build_extensions(self):
        msvc = self.compiler.compiler_type == "msvc"
        use_openmp = not _flag("LRN_CORE_NO_OPENMP")
        if use_openmp and not msvc and not _compiler_accepts_openmp(self.compiler):
            print(
                "\n*** lrn-core: the C compiler cannot build OpenMP programs with -fopenmp.\n"
                "*** Building single-threaded kernels. Install an OpenMP runtime (e.g. libgomp,\n"
                "*** or libomp for clang) for multi-threading, or set LRN_CORE_NO_OPENMP=1 to\n"
                "*** silence this warning.\n",
                file=sys.stderr,
            )
            use_openmp = False
        # float64 with a generic beta uses glibc's vector pow in the AVX2 build when it links
        # (Linux); float32 has its own vector power in the kernels.
        use_libmvec = (
            not msvc
            and not _flag("LRN_CORE_NO_LIBMVEC")
            and any(e.name.endswith("_avx2") for e in self.extensions)
            and _links_libmvec(self.compiler)
        )
        march = os.environ.get("LRN_CORE_MARCH", "").strip()
        extra = os.environ.get("LRN_CORE_CFLAGS", "").split()
        for ext in self.extensions:
            if msvc:
                cflags, ldflags = ["/O2"] + (["/openmp"] if use_openmp else []), []
            else:
                # -fno-math-errno lets sqrt/div vectorise; no -ffast-math: NaN/inf must follow IEEE.
                # The build is warning-free under -Wall -Wextra; keep it so.
                cflags = ["-O3", "-fno-math-errno", "-fno-trapping-math", "-Wall", "-Wextra"]
                ldflags = []
                if use_openmp:
                    cflags.append("-fopenmp")
                    ldflags.append("-fopenmp")
                if ext.name.endswith("_avx2"):
                    cflags += ["-mavx2", "-mfma"]
                elif march:
                    cflags.append(f"-march={march}")
            ext.extra_compile_args = cflags + extra
            ext.extra_link_args = ldflags
            flags = " ".join(ext.extra_compile_args).replace('"', "")
            ext.define_macros = [
                ("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION"),
                ("LRN_BUILD_CFLAGS", f'"{flags}"'),
            ]
            if use_libmvec and ext.name.endswith("_avx2"):
                ext.define_macros.append(("LRN_HAVE_LIBMVEC", "1"))
                ext.libraries = ["mvec", "m"]
        super().build_extensions()


def _extensions():
    names = ["_kernels"]
    is_x86_64 = platform.machine().lower() in ("x86_64", "amd64") and sys.maxsize > 2**32
    if is_x86_64 and not _flag("LRN_CORE_NO_AVX2") and "mingw" not in sysconfig.get_platform():
        names.append("_kernels_avx2")
    # The C kernels: compiled into each variant (with its flags); the Cython driver declares them
    # in _lrn_kernels.pxd. depends= rebuilds the extensions when a header changes.
    # lrn_xla_ffi.c holds the JAX custom-call handlers (XLA FFI) over the same driver. It is
    # built against the vendored declarations in _simd/xla_ffi_c_api.h, not jaxlib's headers, so
    # the core builds without JAX and one binary serves every jaxlib that accepts XLA FFI API 0.1
    # handlers (docs/jax-ffi.rst).
    simd = "src/lrn_core/_simd"
    exts = [
        Extension(
            f"lrn_core.{name}",
            [f"src/lrn_core/{name}.pyx", f"{simd}/lrn_kernels.c", f"{simd}/lrn_xla_ffi.c"],
            include_dirs=[np.get_include(), simd],
            depends=[
                f"{simd}/lrn_kernels.h",
                f"{simd}/lrn_kernels.c",
                f"{simd}/lrn_driver.h",
                f"{simd}/lrn_xla_ffi.h",
                f"{simd}/lrn_xla_ffi.c",
                f"{simd}/xla_ffi_c_api.h",
                "src/lrn_core/_lrn_kernels.pxd",
                "src/lrn_core/_lrn_xla_ffi.pxd",
                "src/lrn_core/_kernels.pyx",
            ],
        )
        for name in names
    ]
    # lrn_tf_op.c: TensorFlow ops over the same driver, a plain shared library (no Python module)
    # that the TF adapter loads with tf.load_op_library. It declares the TF C API it calls
    # (_simd/tf_c_api.h) and looks it up in the process when TF loads it, so it builds without
    # TensorFlow (docs/tensorflow-op.rst). POSIX only (dlopen).
    if os.name == "posix" and "mingw" not in sysconfig.get_platform():
        exts.append(
            Extension(
                "lrn_core._lrn_tf_op",
                [f"{simd}/lrn_tf_op.c"],
                include_dirs=[simd],
                libraries=["dl"],
                depends=[f"{simd}/tf_c_api.h", f"{simd}/lrn_driver.h"],
            )
        )
    return cythonize(
        exts,
        compiler_directives={
            "language_level": 3,
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": False,
            "embedsignature": True,
            "autotestdict": False,
        },
    )


setup(
    ext_modules=_extensions(),
    cmdclass={"build_ext": BuildExt},
    # adapters/ and benchmarks/ sit at the top of the repository and install inside the package.
    package_dir={"": "src", "lrn_core.adapters": "adapters", "lrn_core.benchmarks": "benchmarks"},
    packages=[
        "lrn_core",
        "lrn_core.adapters",
        "lrn_core.adapters.jax",
        "lrn_core.adapters.tensorflow",
        "lrn_core.adapters.torch",
        "lrn_core.benchmarks",
    ],
)
