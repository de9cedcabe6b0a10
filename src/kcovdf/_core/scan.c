/* Record scanner for kcovdf.decode: finds where the records of a buffer start.
 *
 * This is the parsing loop of the kernel documentation (kcov-dataflow.rst),
 * with its resync rule kept exactly: a word that is not a valid header (bits
 * 63:32 nonzero, or a type nibble other than 0xE/0xF) is skipped one word at a
 * time; a value count of 0 is read as 1. It only finds record boundaries; the
 * columns are gathered afterwards by numpy from the offsets returned here.
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

PyDoc_STRVAR(scan_doc,
"scan(words, start, stop) -> (offsets, skipped)\n\n"
"Find the records in words[start:stop] of a buffer of little-endian u64 words.\n"
"offsets: bytearray of native int64, the word offset of every complete record.\n"
"skipped: bytearray of native int64 triples (offset, count, reason) with reason\n"
"0 = not a valid header, 1 = truncated record, 2 = tail shorter than a record.");

static PyObject *scan(PyObject *self, PyObject *args)
{
    Py_buffer view;
    Py_ssize_t start, stop;
    if (!PyArg_ParseTuple(args, "y*nn:scan", &view, &start, &stop))
        return NULL;
    PyObject *offsets = NULL, *result = NULL;
    vec skips = {NULL, 0, 0};
    Py_ssize_t nwords = view.len / 8;
    if (start < 0 || stop > nwords || start > stop) {
        PyErr_Format(PyExc_ValueError, "scan: range [%zd, %zd) outside a buffer of %zd words",
                     start, stop, nwords);
        goto done;
    }
    /* Every record takes at least 4 words, which bounds the offsets; only the
     * pages actually written get committed, and the final resize gives back the rest. */
    Py_ssize_t cap = (stop - start) / 4 + 1;
    offsets = PyByteArray_FromStringAndSize(NULL, cap * (Py_ssize_t)sizeof(int64_t));
    if (!offsets)
        goto done;
    int64_t *out = (int64_t *)PyByteArray_AS_STRING(offsets);
    const unsigned char *w = view.buf;
    Py_ssize_t i = start, n = 0, run = -1;
    int nomem = 0;

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
        out[n++] = i;
        i += 3 + nvals;
    }
    if (run >= 0)
        nomem |= push_skip(&skips, run, i - run, SKIP_INVALID);
    if (i < stop)
        nomem |= push_skip(&skips, i, stop - i,
                           valid_header(load_word(w, i)) ? SKIP_TRUNCATED : SKIP_SHORT_TAIL);
    Py_END_ALLOW_THREADS

    if (nomem) {
        PyErr_NoMemory();
        goto done;
    }
    if (PyByteArray_Resize(offsets, n * (Py_ssize_t)sizeof(int64_t)) < 0)
        goto done;
    PyObject *skipped = PyByteArray_FromStringAndSize((const char *)skips.v,
                                                      skips.len * (Py_ssize_t)sizeof(int64_t));
    if (skipped) {
        result = PyTuple_Pack(2, offsets, skipped);
        Py_DECREF(skipped);
    }
done:
    Py_XDECREF(offsets);
    free(skips.v);
    PyBuffer_Release(&view);
    return result;
}

PyMethodDef kcovdf_scan_methods[] = {
    {"scan", scan, METH_VARARGS, scan_doc},
    {NULL, NULL, 0, NULL},
};
