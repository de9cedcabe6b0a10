/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Record constants of the kcovdf ABI (docs/abi.md), the C twin of kcovdf/abi.py.
 * Only constants live here, as kcov keeps its uapi header apart.
 * tests/runtime/test_encode_c.py parses every KDF_* define and checks it against abi.py.
 */
#ifndef KCOVDF_ABI_H
#define KCOVDF_ABI_H

#define KDF_FORMAT_VERSION 2

/* record framing (kernel v2 layout) */
#define KDF_TYPE_ENTRY 0xE
#define KDF_TYPE_RETURN 0xF
#define KDF_TYPE_EVENT 0xD
#define KDF_HEADER_WORDS 3
#define KDF_MAX_VALUES 15
#define KDF_SEQ_MASK 0x00FFFFFFu
#define KDF_PTR_MASK 0xFFFFFFFFFFFFull

#define KDF_ARG_RETURN 0x00
#define KDF_ARG_EXCEPTION 0xFF
#define KDF_ARG_YIELD 0xFE
#define KDF_ARG_MAX_PARAM 0xFC
#define KDF_ARG_NONE 0xFD
#define KDF_EVENT_RESUME 0x01
#define KDF_EVENT_SUSPEND 0x02

#define KDF_FAULT 0xBADADD85ull
#define KDF_REDACTED 0x2EDAC7EDull
#define KDF_PY_VALUE_SIZE 8
#define KDF_MIN_WORDS 2

/* value encoding */
#define KDF_MAX_FIELDS 13
#define KDF_STR_CHUNKS 11
#define KDF_BYTES_CHUNKS 12
#define KDF_SEQ_ITEMS 12
#define KDF_MAP_PAIRS 6
#define KDF_NESTED_CHUNKS 3
#define KDF_TOTAL_CAP 255
#define KDF_REDACTED_CLASS "kcovdf.<redacted>"

#define KDF_KIND_NONE 0
#define KDF_KIND_INT 1
#define KDF_KIND_INT_TRUNC 2
#define KDF_KIND_BOOL 3
#define KDF_KIND_FLOAT 4
#define KDF_KIND_STR7 5
#define KDF_KIND_BYTES7 6
#define KDF_KIND_OBJ 7
#define KDF_KIND_LEN 8
#define KDF_KIND_CHUNK 9
#define KDF_KIND_FAULT 10
#define KDF_KIND_REDACTED 11
#define KDF_KIND_UNSET 12

#define KDF_FORM_SCALAR 0
#define KDF_FORM_BIGINT 1
#define KDF_FORM_STR 2
#define KDF_FORM_BYTES 3
#define KDF_FORM_SEQ 4
#define KDF_FORM_MAP 5
#define KDF_FORM_OBJECT 6
#define KDF_FORM_EXCEPTION 7
#define KDF_FORM_REDACTED 8
#define KDF_FORM_NAMED 9

/* .kdf header page: byte offsets of its fields */
#define KDF_FILE_MAGIC_LE64 0x01004644564F434Bull /* b"KCOVDF\0\1" read as a little-endian u64 */
#define KDF_FILE_HEADER_SIZE 4096
#define KDF_HDR_VERSION 8
#define KDF_HDR_HEADER_SIZE 12
#define KDF_HDR_WORDS 16
#define KDF_HDR_DROPS 24
#define KDF_HDR_OWNER 32
#define KDF_HDR_PID 40
#define KDF_HDR_CREATED_NS 48
#define KDF_HDR_FLAGS 56

/* FNV-1a 64: class ids, shape ids, pcs */
#define KDF_FNV_OFFSET 0xCBF29CE484222325ull
#define KDF_FNV_PRIME 0x100000001B3ull

#endif /* KCOVDF_ABI_H */
