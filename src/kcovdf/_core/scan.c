/* Record scanner for kcovdf.decode: finds where the records of a buffer start.
 *
 * This is the parsing loop of the kernel documentation (kcov-dataflow.rst),
 * with its resync rule kept exactly: a word that is not a valid header (bits
 * 63:32 nonzero, or a type nibble other than 0xE/0xF) is skipped one word at a
 * time; a value count of 0 is read as 1. It returns the record offsets, and on
 * request fills the columns of the records table in the same pass: a numpy
 * gather from the offsets costs ten times the scan (kcovdf.decode keeps that
 * gather as the reference twin).
 *
 * Two deliberate differences from the documentation's loop:
 * - it bounds the loop by the end index (1 + count), not by the count itself,
 *   which ends one word early and loses a last record of one value word;
 * - a record whose value words run past the end is reported, not decoded.
 *
 * Buffers are little-endian u64 words (docs/abi.md section 1).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

/* Reasons of a skipped run; kcovdf.decode names them. */
enum {
    SKIP_INVALID = 0,   /* words that are not a valid record header */
    SKIP_TRUNCATED = 1, /* a valid header whose record runs past the end */
    SKIP_SHORT_TAIL = 2 /* fewer words left than the smallest record */
};

static inline uint64_t load_word(const unsigned char *base, Py_ssize_t i)
{
    uint64_t w;
    memcpy(&w, base + 8 * i, 8); /* the buffer may be unaligned (bytes at any offset) */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    w = __builtin_bswap64(w);
#endif
    return w;
}

static inline int valid_header(uint64_t h)
{
    uint32_t type = (h >> 28) & 0xF;
    return !(h >> 32) && (type == 0xE || type == 0xF);
}

/* A new large output is written once, front to back: transparent huge pages
 * turn its ~25 page faults per 100 KB into one per 2 MB, which is most of the
 * cost of filling it. Only a hint; ignored where unsupported. */
static PyObject *new_output(Py_ssize_t bytes)
{
    PyObject *obj = PyByteArray_FromStringAndSize(NULL, bytes);
#ifdef MADV_HUGEPAGE
    if (obj && bytes >= (4 << 20)) {
        uintptr_t page = 4096, p = (uintptr_t)PyByteArray_AS_STRING(obj);
        uintptr_t lo = (p + page - 1) & ~(page - 1), hi = (p + bytes) & ~(page - 1);
        if (hi > lo)
            madvise((void *)lo, hi - lo, MADV_HUGEPAGE);
    }
#endif
    return obj;
}

/* A growable array of int64, filled without the GIL. */
typedef struct {
    int64_t *v;
    Py_ssize_t len, cap;
} vec;

static int vec_push(vec *a, int64_t x)
{
    if (a->len == a->cap) {
        Py_ssize_t cap = a->cap ? 2 * a->cap : 64;
        int64_t *v = realloc(a->v, (size_t)cap * sizeof(int64_t));
        if (!v)
            return -1;
        a->v = v;
        a->cap = cap;
    }
    a->v[a->len++] = x;
    return 0;
}

static int push_skip(vec *skips, Py_ssize_t at, Py_ssize_t count, int reason)
{
    return vec_push(skips, at) | vec_push(skips, count) | vec_push(skips, reason);
}

/* The columns of the records table, filled in the same pass as the scan. Each is a
 * bytearray allocated at its upper bound (every record takes at least 4 words):
 * only the pages actually written get committed, and the final resize gives back
 * the rest. Order and item sizes are those of kcovdf.decode's _C_COLUMNS. */
enum { COL_SEQ, COL_PC, COL_ARG, COL_SIZE, COL_PTR, COL_VOFF, COL_VALUES, COL_KOFF,
       COL_KDATA, NCOLS };

static const char *const kind_name[] = {"entry", "return", "exception", "yield"};
static const int32_t kind_len[] = {5, 6, 9, 5};

typedef struct {
    PyObject *obj[NCOLS];
    uint32_t *seq;
    uint8_t *arg, *size;
    uint64_t *pc, *ptr, *values;
    int32_t *voff, *koff;
    char *kdata;
} columns;

static int columns_alloc(columns *c, Py_ssize_t words)
{
    Py_ssize_t nrec = words / 4 + 1;
    Py_ssize_t bytes[NCOLS] = {4 * nrec, 8 * nrec, nrec, nrec, 8 * nrec,
                               4 * (nrec + 1), 8 * words, 4 * (nrec + 1), 9 * nrec};
    for (int k = 0; k < NCOLS; k++)
        if (!(c->obj[k] = new_output(bytes[k])))
            return -1;
#define COL(k) PyByteArray_AS_STRING(c->obj[k])
    c->seq = (uint32_t *)COL(COL_SEQ);
    c->pc = (uint64_t *)COL(COL_PC);
    c->arg = (uint8_t *)COL(COL_ARG);
    c->size = (uint8_t *)COL(COL_SIZE);
    c->ptr = (uint64_t *)COL(COL_PTR);
    c->voff = (int32_t *)COL(COL_VOFF);
    c->values = (uint64_t *)COL(COL_VALUES);
    c->koff = (int32_t *)COL(COL_KOFF);
    c->kdata = COL(COL_KDATA);
#undef COL
    c->voff[0] = c->koff[0] = 0;
    return 0;
}

static int columns_shrink(columns *c, Py_ssize_t n)
{
    Py_ssize_t nvals = c->voff[n], kbytes = c->koff[n];
    Py_ssize_t bytes[NCOLS] = {4 * n, 8 * n, n, n, 8 * n, 4 * (n + 1), 8 * nvals,
                               4 * (n + 1), kbytes};
    for (int k = 0; k < NCOLS; k++)
        if (PyByteArray_Resize(c->obj[k], bytes[k]) < 0)
            return -1;
    return 0;
}

/* One record's columns; 0, or -1 when the value count overflows an int32 list offset. */
static inline int columns_put(columns *c, Py_ssize_t n, const unsigned char *w, Py_ssize_t i,
                              uint64_t h, Py_ssize_t nvals)
{
    uint64_t meta = load_word(w, i + 2);
    uint8_t arg = meta >> 56;
    uint8_t kind = ((h >> 28) & 0xF) == 0xE ? 0 : arg == 0xFF ? 2 : arg == 0xFE ? 3 : 1;
    c->seq[n] = h & 0x00FFFFFF;
    c->pc[n] = load_word(w, i + 1);
    c->arg[n] = arg;
    c->size[n] = (meta >> 48) & 0xFF;
    c->ptr[n] = meta & 0xFFFFFFFFFFFFULL;
    int64_t v = c->voff[n];
    if (v + nvals > INT32_MAX)
        return -1;
    for (Py_ssize_t j = 0; j < nvals; j++)
        c->values[v + j] = load_word(w, i + 3 + j);
    c->voff[n + 1] = (int32_t)(v + nvals);
    memcpy(c->kdata + c->koff[n], kind_name[kind], kind_len[kind]);
    c->koff[n + 1] = c->koff[n] + kind_len[kind];
    return 0;
}

PyDoc_STRVAR(scan_doc,
"scan(words, start, stop, columns=False) -> (offsets, skipped[, columns])\n\n"
"Find the records in words[start:stop] of a buffer of little-endian u64 words.\n"
"offsets: bytearray of native int64, the word offset of every complete record\n"
"(empty when columns are asked for: they are not needed then).\n"
"skipped: bytearray of native int64 triples (offset, count, reason) with reason\n"
"0 = not a valid header, 1 = truncated record, 2 = tail shorter than a record.\n"
"columns: when asked for, a tuple of bytearrays of native integers: seq (u32),\n"
"pc (u64), arg_idx (u8), size (u8), ptr (u64), value list offsets (i32, n+1),\n"
"value words (u64), kind string offsets (i32, n+1), kind string bytes.");

static PyObject *scan(PyObject *self, PyObject *args)
{
    Py_buffer view;
    Py_ssize_t start, stop;
    int want_columns = 0;
    if (!PyArg_ParseTuple(args, "y*nn|p:scan", &view, &start, &stop, &want_columns))
        return NULL;
    PyObject *offsets = NULL, *result = NULL;
    columns cols;
    memset(&cols, 0, sizeof cols);
    vec skips = {NULL, 0, 0};
    Py_ssize_t nwords = view.len / 8;
    if (start < 0 || stop > nwords || start > stop) {
        PyErr_Format(PyExc_ValueError, "scan: range [%zd, %zd) outside a buffer of %zd words",
                     start, stop, nwords);
        goto done;
    }
    Py_ssize_t cap = want_columns ? 0 : (stop - start) / 4 + 1;
    offsets = new_output(cap * (Py_ssize_t)sizeof(int64_t));
    if (!offsets || (want_columns && columns_alloc(&cols, stop - start) < 0))
        goto done;
    int64_t *out = (int64_t *)PyByteArray_AS_STRING(offsets);
    const unsigned char *w = view.buf;
    Py_ssize_t i = start, n = 0, run = -1;
    int nomem = 0, overflow = 0;

    Py_BEGIN_ALLOW_THREADS
    while (i + 3 < stop) {
        uint64_t h = load_word(w, i);
        if (!valid_header(h)) {
            if (run < 0)
                run = i;
            i++;
            continue;
        }
        if (run >= 0) {
            nomem |= push_skip(&skips, run, i - run, SKIP_INVALID);
            run = -1;
        }
        Py_ssize_t nvals = (h >> 24) & 0xF;
        if (!nvals)
            nvals = 1;
        if (i + 3 + nvals > stop)
            break; /* reported below as truncated */
        if (want_columns && columns_put(&cols, n, w, i, h, nvals) < 0) {
            overflow = 1;
            break;
        }
        if (!want_columns)
            out[n] = i;
        n++;
        i += 3 + nvals;
    }
    if (run >= 0)
        nomem |= push_skip(&skips, run, i - run, SKIP_INVALID);
    if (i < stop && !overflow)
        nomem |= push_skip(&skips, i, stop - i,
                           valid_header(load_word(w, i)) ? SKIP_TRUNCATED : SKIP_SHORT_TAIL);
    Py_END_ALLOW_THREADS

    if (nomem) {
        PyErr_NoMemory();
        goto done;
    }
    if (overflow) {
        PyErr_Format(PyExc_ValueError, "scan: more than %d value words in one buffer", INT32_MAX);
        goto done;
    }
    if (PyByteArray_Resize(offsets, want_columns ? 0 : n * (Py_ssize_t)sizeof(int64_t)) < 0)
        goto done;
    if (want_columns && columns_shrink(&cols, n) < 0)
        goto done;
    PyObject *skipped = PyByteArray_FromStringAndSize((const char *)skips.v,
                                                      skips.len * (Py_ssize_t)sizeof(int64_t));
    if (!skipped)
        goto done;
    if (want_columns) {
        PyObject *col_tuple = PyTuple_New(NCOLS);
        if (col_tuple) {
            for (int k = 0; k < NCOLS; k++) {
                PyTuple_SET_ITEM(col_tuple, k, cols.obj[k]);
                cols.obj[k] = NULL; /* the tuple owns it now */
            }
            result = PyTuple_Pack(3, offsets, skipped, col_tuple);
            Py_DECREF(col_tuple);
        }
    } else {
        result = PyTuple_Pack(2, offsets, skipped);
    }
    Py_DECREF(skipped);
done:
    for (int k = 0; k < NCOLS; k++)
        Py_XDECREF(cols.obj[k]);
    Py_XDECREF(offsets);
    free(skips.v);
    PyBuffer_Release(&view);
    return result;
}

PyMethodDef kcovdf_scan_methods[] = {
    {"scan", scan, METH_VARARGS, scan_doc},
    {NULL, NULL, 0, NULL},
};
