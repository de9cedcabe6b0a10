// SPDX-License-Identifier: GPL-2.0
/*
 * kcovdf._core._recorder, built as one translation unit (a unity build).
 *
 * The files below are split by job (kdf.h says which does what), but compiled
 * together: the hot path in record.c calls the encoder once per value, and the encoder
 * calls the layout cache and the type cache per field. As one unit every function is
 * static and the compiler inlines across the files, as it did when they were one file,
 * with no LTO needed and no symbol exported but PyInit__recorder and native.c's
 * kcovdf_native_api (the table instrumented native code looks up).
 */
#include "kdf.h"

#include "types.c"
#include "layout.c"
#include "encode.c"
#include "record.c"
#include "native.c"
