#ifndef KVSCOPE_CLAPACK_SHIM_H
#define KVSCOPE_CLAPACK_SHIM_H
// OpenBLAS's CBLAS (libopenblas-dev) and the reference LAPACKE (liblapacke-dev),
// whose Fortran LAPACK underneath is OpenBLAS's. Only LinearAlgebra imports this.
#include <cblas.h>
#include <lapacke.h>
#endif
