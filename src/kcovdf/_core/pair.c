/* kcovdf._core._pair, the call pairer of kcovdf.read.calls: which call every record
 * belongs to, and the depth it is drawn at. Its own extension: the reader owns it, the
 * recorder never calls it.
 *
 * kcovdf.read.calls.Pairer is the reference twin, record for record: its _StackWalk
 * (format 1: a stack per task, paired by pc) and _IdWalk (format 2: paired by (pid,
 * call id)) are what this file does, in the same order and with the same edge cases;
 * read them for the why of each step. Here the state is columnar: the calls not yet
 * drained are one growable array per column, addressed by a *slot* (the position in
 * them), each task keeps a stack (and, format 1, a list of suspended calls) of slots,
 * and each pid an open-addressing hash table from call id to the slot of the call last
 * opened under it. State carries over between feed() calls, so a trace may be fed in
 * batches; drain() hands the finished calls out and compacts the arrays (slots change,
 * a call's index, the one feed() returns, never), so that the state stays as small as
 * the calls still open. A slot's index is slot + shift for the calls opened since the
 * last drain, and in Pairer.surv for the calls that stayed at it (global_index): the
 * hot path pays no load, the arrays no column, for it.
 *
 * Kind codes are the indexes of kcovdf.read.decode.KINDS.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define SEQ_MASK 0x00FFFFFFu /* kcovdf.abi.SEQ_MASK */
#define ARG_NONE 0xFD        /* kcovdf.abi.ARG_NONE */

enum { K_ENTRY, K_RETURN, K_EXCEPTION, K_YIELD, K_RESUME, K_SUSPEND, K_EVENT, NKINDS };

/* --- growable arrays ----------------------------------------------------------- */

/* Grow *p (of *cap items of item bytes) to hold need items: 0, or -1 out of memory. */
static int grow(void **p, Py_ssize_t *cap, Py_ssize_t need, size_t item)
{
    if (need <= *cap)
        return 0;
    Py_ssize_t n = *cap ? *cap : 16;
    while (n < need) {
        if (n > PY_SSIZE_T_MAX / 2 / (Py_ssize_t)item)
            return -1;
        n *= 2;
    }
    void *q = realloc(*p, (size_t)n * item);
    if (!q)
        return -1;
    *p = q;
    *cap = n;
    return 0;
}

/* A stack or list of slots (or of global indexes: Pairer.resumer). */
typedef struct {
    int64_t *v;
    Py_ssize_t len, cap;
} vec;

static int vec_push(vec *a, int64_t x)
{
    if (a->len == a->cap && grow((void **)&a->v, &a->cap, a->len + 1, sizeof(int64_t)) < 0)
        return -1;
    a->v[a->len++] = x;
    return 0;
}

static void vec_remove(vec *a, Py_ssize_t at)
{
    memmove(a->v + at, a->v + at + 1, (size_t)(a->len - at - 1) * sizeof(int64_t));
    a->len--;
}

/* --- the calls, one array per column -------------------------------------------
 *
 * The columns columns() returns, in this order, after the call index (an int64 column
 * made from the slots) and before the resumers; kcovdf.read.calls._COLUMNS names them
 * with the same item types. parent (a call index) -1 is none; flags says which of
 * call_id, entry_seq, exit_seq and last_seq are set (F_*); exit -1 none (else the kind
 * code that ended the call), last_arg -1 none. */
#define CALL_COLUMNS(X)                                                                      \
    X(uint64_t, call_id) X(uint64_t, pc) X(int64_t, parent) X(int32_t, task)                 \
    X(int32_t, depth) X(uint32_t, entry_seq) X(uint32_t, exit_seq) X(int32_t, nargs)         \
    X(int32_t, yields) X(int32_t, suspends) X(int32_t, resumes) X(uint32_t, last_seq)        \
    X(int16_t, last_arg) X(int8_t, exit) X(uint8_t, flags)

enum { F_CALL_ID = 1, F_ENTRY_SEQ = 2, F_EXIT_SEQ = 4, F_LAST_SEQ = 8 };

enum {
#define X(type, name) COL_##name,
    CALL_COLUMNS(X)
#undef X
    NCOLS
};

/* The tuple of columns() and drain(): the call index, the CALL_COLUMNS, the resumers. */
enum { OUT_CALL = 0, OUT_COLS = 1, OUT_RESUMERS = NCOLS + 1, NOUT };

static const size_t col_size[NCOLS] = {
#define X(type, name) sizeof(type),
    CALL_COLUMNS(X)
#undef X
};

typedef struct {
#define X(type, name) type *name;
    CALL_COLUMNS(X)
#undef X
    int32_t *nstacks; /* on how many task stacks the call is: 0 spares a stack search */
    Py_ssize_t len, cap; /* slots in use, and room */
} calls;

/* Room for need calls: 0, or -1 out of memory. */
static int calls_reserve(calls *c, Py_ssize_t need)
{
    if (need <= c->cap)
        return 0;
    Py_ssize_t cap = c->cap;
#define X(type, name)                                                                        \
    cap = c->cap;                                                                            \
    if (grow((void **)&c->name, &cap, need, sizeof(type)) < 0)                               \
        return -1;
    CALL_COLUMNS(X)
    X(int32_t, nstacks)
#undef X
    c->cap = cap; /* only once every column has grown: a failure leaves c as it was */
    return 0;
}

static void calls_free(calls *c)
{
#define X(type, name) free(c->name);
    CALL_COLUMNS(X)
    X(int32_t, nstacks)
#undef X
    memset(c, 0, sizeof *c);
}

/* --- a column handed to Python ----------------------------------------------------
 *
 * columns() gives the pairer's own arrays away, without a copy (they are a few hundred MB
 * for millions of calls): a Column owns one and exports it read-only through the buffer
 * protocol. The pairer keeps reading them; a later feed() first takes copies back. */
typedef struct {
    PyObject_HEAD
    void *data;
    Py_ssize_t len; /* bytes */
} Column;

static int column_getbuffer(Column *self, Py_buffer *view, int flags)
{
    return PyBuffer_FillInfo(view, (PyObject *)self, self->data, self->len, 1, flags);
}

static void column_dealloc(Column *self)
{
    free(self->data);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyBufferProcs column_as_buffer = {
    .bf_getbuffer = (getbufferproc)column_getbuffer,
};

static PyTypeObject ColumnType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "kcovdf._core._pair.Column",
    .tp_basicsize = sizeof(Column),
    .tp_dealloc = (destructor)column_dealloc,
    .tp_as_buffer = &column_as_buffer,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "One column of Pairer.columns(): read-only bytes of native integers.",
};

/* --- an open-addressing hash table (linear probing) of u64 key -> index >= 0 --------
 *
 * A process's call ids count up from 1, so a call-id table starts with the key itself as
 * its hash: consecutive ids take consecutive slots, and the open calls, whose ids are the
 * latest, stay in a few cache lines (a mixing hash makes every lookup a cache miss in a
 * table of millions). Keys that do not count up (ids with common low bits, or interleaved
 * sequences) make long probe runs instead: the first run longer than PROBE_LIMIT switches
 * the table to a mixing hash for good. */
#define PROBE_LIMIT 64

typedef struct {
    uint64_t key;
    uint64_t stored; /* the value + 1; 0: an empty slot, so that calloc'd memory is empty */
} slot;

typedef struct {
    slot *s;
    size_t mask, used; /* mask + 1 slots, a power of two, at most half of them used */
    int mixed;         /* hash by splitmix64 rather than by the key itself */
} map;

static inline size_t map_hash(const map *m, uint64_t key)
{
    if (!m->mixed)
        return (size_t)key;
    key ^= key >> 30; /* splitmix64's finalizer */
    key *= 0xBF58476D1CE4E5B9ULL;
    key ^= key >> 27;
    key *= 0x94D049BB133111EBULL;
    key ^= key >> 31;
    return (size_t)key;
}

/* The slot of key, or the empty slot where it would go; *probes counts the steps. */
static slot *map_slot(const map *m, uint64_t key, size_t *probes)
{
    size_t i = map_hash(m, key) & m->mask, n = 0;
    while (m->s[i].stored && m->s[i].key != key) {
        i = (i + 1) & m->mask;
        n++;
    }
    *probes = n;
    return &m->s[i];
}

/* Move the entries to a new table of n slots (mixed or not): 0, or -1 out of memory.
 * calloc: the pages of a large table stay untouched (uncommitted) until a key lands in
 * them, which for keys that count up is only the part they fill. */
static int map_rebuild(map *m, size_t n, int mixed)
{
    map t = {calloc(n, sizeof(slot)), n - 1, m->used, mixed};
    if (!t.s)
        return -1;
    size_t probes;
    for (size_t i = 0; m->s && i <= m->mask; i++) {
        if (!m->s[i].stored)
            continue;
        slot *to = map_slot(&t, m->s[i].key, &probes);
        if (probes > PROBE_LIMIT && !mixed) { /* these keys do not count up: start over, mixed */
            free(t.s);
            return map_rebuild(m, n, 1);
        }
        *to = m->s[i];
    }
    free(m->s);
    *m = t;
    return 0;
}

/* A long run in a table hashed by key: mix it (if memory allows; it still works if not). */
static void map_check_run(map *m, size_t probes)
{
    if (probes > PROBE_LIMIT && !m->mixed)
        (void)map_rebuild(m, m->mask + 1, 1);
}

/* The value of key, or -1. */
static int64_t map_get(map *m, uint64_t key)
{
    if (!m->s)
        return -1;
    size_t probes;
    int64_t value = (int64_t)map_slot(m, key, &probes)->stored - 1;
    map_check_run(m, probes);
    return value;
}

/* Set key to value (>= 0), replacing any earlier one: 0, or -1 out of memory. */
static int map_put(map *m, uint64_t key, int64_t value)
{
    if ((!m->s || 2 * (m->used + 1) > m->mask + 1) &&
        map_rebuild(m, m->s ? 2 * (m->mask + 1) : 1024, m->mixed) < 0)
        return -1;
    size_t probes;
    slot *s = map_slot(m, key, &probes);
    if (!s->stored)
        m->used++;
    s->key = key;
    s->stored = (uint64_t)value + 1;
    map_check_run(m, probes);
    return 0;
}

/* --- the tasks ------------------------------------------------------------------- */

typedef struct {
    int32_t index;
    int32_t format;     /* >= 2: paired by (pid, call id); else by pc (format 1) */
    int64_t pid;
    int started;        /* has had records: its format can no longer change */
    Py_ssize_t ids;     /* format 2, once started: its pid's table of call ids (in Pairer.ids) */
    int64_t collecting; /* format 1: the slot of the call whose arguments are still arriving, or -1 */
    vec stack;          /* the slots of the calls running on it, innermost last */
    vec suspended;      /* format 1: slots of calls taken off by a yield, last suspended last */
} task_state;

typedef struct {
    PyObject_HEAD
    calls c;
    int64_t *surv;           /* the index of slots 0 to nsurv - 1: the calls the last drain left */
    Py_ssize_t nsurv;
    int64_t shift;           /* the index of any later slot, less the slot */
    vec resumed, resumer;    /* every resume not drained, in order: the call's slot, and its
                                resumer's index or -1 */
    map *ids;                /* per pid: call id -> the slot of the call last opened under it */
    Py_ssize_t nids, cap_ids;
    map pids;                /* pid -> its table in ids */
    map slots;               /* task index -> its index in tasks */
    task_state *tasks;
    Py_ssize_t ntasks, cap_tasks;
    int busy;                /* a feed() runs without the GIL: the state is its alone */
    int broken;              /* memory ran out mid-feed: the state is half updated */
    PyObject *exported;      /* the last columns(), until a feed() or drain(): it owns c's columns */
} Pairer;

/* The index of the call in slot at (what feed() returns, and parent and resumers hold). */
static inline int64_t global_index(const Pairer *self, int64_t at)
{
    return at >= self->nsurv ? at + self->shift : self->surv[at];
}

/* Take c's columns back from the Columns of the last columns() (copies): 0, or -1. */
static int take_back(Pairer *self)
{
    calls *c = &self->c;
    void *copy[NCOLS] = {NULL};
    if (!self->exported)
        return 0;
    for (int k = 0; k < NCOLS; k++) {
        if (c->cap && !(copy[k] = malloc((size_t)c->cap * col_size[k]))) {
            for (int j = 0; j < k; j++)
                free(copy[j]);
            PyErr_NoMemory();
            return -1;
        }
    }
    int k = 0;
#define X(type, name)                                                                        \
    if (c->len)                                                                              \
        memcpy(copy[k], c->name, (size_t)c->len * sizeof(type));                             \
    c->name = copy[k++];
    CALL_COLUMNS(X)
#undef X
    Py_CLEAR(self->exported);
    return 0;
}

/* The slot of task index (a new format 1 task if undeclared), or -1 out of memory. */
static Py_ssize_t task_slot(Pairer *self, int32_t index)
{
    int64_t at = map_get(&self->slots, (uint64_t)(uint32_t)index);
    if (at >= 0)
        return (Py_ssize_t)at;
    if (grow((void **)&self->tasks, &self->cap_tasks, self->ntasks + 1, sizeof(task_state)) < 0 ||
        map_put(&self->slots, (uint64_t)(uint32_t)index, self->ntasks) < 0)
        return -1;
    task_state *t = &self->tasks[self->ntasks];
    memset(t, 0, sizeof *t);
    t->index = index;
    t->format = 1;
    t->collecting = -1;
    t->ids = -1;
    return self->ntasks++;
}

/* Start task t: a format 2 task gets its pid's table of call ids. 0, or -1 out of memory. */
static int task_start(Pairer *self, task_state *t)
{
    t->started = 1;
    if (t->format < 2)
        return 0;
    int64_t at = map_get(&self->pids, (uint64_t)t->pid);
    if (at < 0) {
        if (grow((void **)&self->ids, &self->cap_ids, self->nids + 1, sizeof(map)) < 0 ||
            map_put(&self->pids, (uint64_t)t->pid, self->nids) < 0)
            return -1;
        memset(&self->ids[self->nids], 0, sizeof(map));
        at = self->nids++;
    }
    t->ids = (Py_ssize_t)at;
    return 0;
}

/* --- pairing (the twins: kcovdf.read.calls._StackWalk and _IdWalk) ------------------ */

/* A new call of task t at pc, under the call on top of its stack: its slot, or -1. */
static int64_t new_call(Pairer *self, task_state *t, uint64_t pc, int has_id, uint64_t call_id)
{
    calls *c = &self->c;
    if (calls_reserve(c, c->len + 1) < 0)
        return -1;
    int64_t i = c->len;
    if (has_id && map_put(&self->ids[t->ids], call_id, i) < 0)
        return -1;
    c->len++;
    c->call_id[i] = has_id ? call_id : 0;
    c->flags[i] = has_id ? F_CALL_ID : 0;
    c->task[i] = t->index;
    c->pc[i] = pc;
    c->parent[i] = t->stack.len ? global_index(self, t->stack.v[t->stack.len - 1]) : -1;
    c->depth[i] = (int32_t)t->stack.len;
    c->entry_seq[i] = c->exit_seq[i] = c->last_seq[i] = 0;
    c->exit[i] = -1;
    c->nargs[i] = c->yields[i] = c->suspends[i] = c->resumes[i] = 0;
    c->last_arg[i] = -1;
    c->nstacks[i] = 0;
    return i;
}

static int push(Pairer *self, vec *stack, int64_t call)
{
    if (vec_push(stack, call) < 0)
        return -1;
    self->c.nstacks[call]++;
    return 0;
}

/* Take stack[at:] off. */
static void truncate_at(Pairer *self, vec *stack, Py_ssize_t at)
{
    for (Py_ssize_t i = at; i < stack->len; i++)
        self->c.nstacks[stack->v[i]]--;
    stack->len = at;
}

/* Where call is on the stack, -1 when it is not on it. */
static Py_ssize_t position(const Pairer *self, const vec *stack, int64_t call)
{
    if (!self->c.nstacks[call])
        return -1;
    for (Py_ssize_t i = stack->len - 1; i >= 0; i--)
        if (stack->v[i] == call)
            return i;
    return -1;
}

static inline int64_t last_seq(const calls *c, int64_t call)
{
    return c->flags[call] & F_LAST_SEQ ? (int64_t)c->last_seq[call] : -1;
}

/* Format 1: an entry record. */
static int64_t stack_entry(Pairer *self, task_state *t, uint64_t pc, uint8_t arg_idx, uint32_t seq)
{
    calls *c = &self->c;
    int64_t call = t->collecting;
    if (call < 0 || c->pc[call] != pc || (int32_t)arg_idx <= c->last_arg[call] ||
        (int64_t)seq != ((last_seq(c, call) + 1) & SEQ_MASK)) {
        if ((call = new_call(self, t, pc, 0, 0)) < 0 || push(self, &t->stack, call) < 0)
            return -1;
        c->entry_seq[call] = seq;
        c->flags[call] |= F_ENTRY_SEQ;
    }
    c->last_arg[call] = arg_idx;
    c->last_seq[call] = seq;
    c->flags[call] |= F_LAST_SEQ;
    c->nargs[call]++;
    t->collecting = call;
    return call;
}

/* Format 1: the innermost open call of pc, taken off the stack or the suspended list. */
static int64_t stack_find(Pairer *self, task_state *t, uint64_t pc)
{
    for (Py_ssize_t i = t->stack.len - 1; i >= 0; i--) {
        int64_t call = t->stack.v[i];
        if (self->c.pc[call] == pc) {
            truncate_at(self, &t->stack, i); /* calls above it lost their returns */
            return call;
        }
    }
    for (Py_ssize_t i = t->suspended.len - 1; i >= 0; i--) {
        int64_t call = t->suspended.v[i];
        if (self->c.pc[call] == pc) {
            vec_remove(&t->suspended, i);
            return call;
        }
    }
    return -1;
}

/* Format 1: a return, exception or yield record. */
static int64_t stack_exit(Pairer *self, task_state *t, uint64_t pc, int kind, uint32_t seq)
{
    calls *c = &self->c;
    t->collecting = -1;
    int64_t call = stack_find(self, t, pc);
    if (call < 0 && (call = new_call(self, t, pc, 0, 0)) < 0)
        return -1;
    if (kind == K_YIELD) {
        c->yields[call]++;
        if (vec_push(&t->suspended, call) < 0)
            return -1;
    } else {
        c->exit[call] = (int8_t)kind;
        c->exit_seq[call] = seq;
        c->flags[call] |= F_EXIT_SEQ;
    }
    return call;
}

/* Format 2: one record; its call's slot (-1: out of memory) and its depth in *depth. */
static int64_t id_record(Pairer *self, task_state *t, int kind, uint64_t pc, uint8_t arg_idx,
                         uint32_t seq, uint64_t call_id, uint64_t value, int32_t *depth)
{
    calls *c = &self->c;
    vec *stack = &t->stack;
    int64_t call = map_get(&self->ids[t->ids], call_id);
    /* a call id met again after its call ended, or under another pc, is a new call */
    int fresh = call < 0 || c->pc[call] != pc || (kind == K_ENTRY && c->exit[call] >= 0);
    if (fresh && (call = new_call(self, t, pc, 1, call_id)) < 0)
        return -1;
    Py_ssize_t at = position(self, stack, call);
    if (kind == K_ENTRY) {
        if (at < 0) {
            if (!(c->flags[call] & F_ENTRY_SEQ) && c->task[call] != t->index) {
                /* first met through a record of another task read earlier: the entry decides */
                c->task[call] = t->index;
                c->depth[call] = (int32_t)stack->len;
                c->parent[call] = stack->len ? global_index(self, stack->v[stack->len - 1]) : -1;
            }
            at = stack->len;
            if (push(self, stack, call) < 0)
                return -1;
        }
        if (!(c->flags[call] & F_ENTRY_SEQ)) {
            c->entry_seq[call] = seq;
            c->flags[call] |= F_ENTRY_SEQ;
        }
        if (arg_idx != ARG_NONE)
            c->nargs[call]++;
        *depth = (int32_t)at;
        return call;
    }
    if (kind == K_RESUME) {
        if (at >= 0) { /* its suspension was lost: it leaves its old place */
            c->nstacks[call]--;
            vec_remove(stack, at);
        }
        int64_t by = value ? map_get(&self->ids[t->ids], value) : -1;
        if (by >= 0)
            by = global_index(self, by); /* the log keeps the resumer's index: it may be drained first */
        if (vec_push(&self->resumed, call) < 0 || vec_push(&self->resumer, by) < 0)
            return -1;
        c->resumes[call]++;
        if (push(self, stack, call) < 0)
            return -1;
        *depth = (int32_t)(stack->len - 1);
        return call;
    }
    *depth = (int32_t)(at >= 0 ? at : stack->len);
    if (kind == K_EVENT)
        return call;
    if (at >= 0)
        truncate_at(self, stack, at); /* calls above it lost their exits or suspensions */
    if (kind == K_YIELD)
        c->yields[call]++;
    else if (kind == K_SUSPEND)
        c->suspends[call]++;
    else {
        c->exit[call] = (int8_t)kind;
        c->exit_seq[call] = seq;
        c->flags[call] |= F_EXIT_SEQ;
    }
    return call;
}

/* The columns of one feed(), read through the buffer protocol. */
enum { IN_TASK, IN_KIND, IN_PC, IN_ARG, IN_SEQ, IN_PTR, IN_VALUE0, NIN };
static const char *const in_names[NIN] = {"task", "kind", "pc", "arg_idx", "seq", "ptr", "value0"};
static const Py_ssize_t in_sizes[NIN] = {4, 1, 8, 1, 4, 8, 8};

/* The pairing loop over n records of the (aligned) columns; 0, or -1 when memory ran out. */
static int feed_loop(Pairer *self, const void *const *col, Py_ssize_t n, int64_t *ids,
                     int32_t *depths)
{
    const int32_t *task = col[IN_TASK];
    const int8_t *kind = col[IN_KIND];
    const uint64_t *pc = col[IN_PC], *ptr = col[IN_PTR], *value0 = col[IN_VALUE0];
    const uint8_t *arg_idx = col[IN_ARG];
    const uint32_t *seq = col[IN_SEQ];
    task_state *t = NULL;
    int32_t current = -1;
    for (Py_ssize_t row = 0; row < n; row++) {
        if (!t || task[row] != current) {
            Py_ssize_t at = task_slot(self, task[row]);
            if (at < 0)
                return -1;
            t = &self->tasks[at]; /* task_slot may move tasks: looked up again at every change */
            current = task[row];
            if (!t->started && task_start(self, t) < 0)
                return -1;
        }
        int k = kind[row];
        int64_t call;
        if (t->format >= 2) {
            call = id_record(self, t, k, pc[row], arg_idx[row], seq[row], ptr[row], value0[row],
                             &depths[row]);
        } else if (k == K_ENTRY) {
            call = stack_entry(self, t, pc[row], arg_idx[row], seq[row]);
            if (call >= 0)
                depths[row] = self->c.depth[call];
        } else if (k == K_RETURN || k == K_EXCEPTION || k == K_YIELD) {
            call = stack_exit(self, t, pc[row], k, seq[row]);
            if (call >= 0)
                depths[row] = self->c.depth[call];
        } else { /* an event record in a format 1 trace belongs to no call */
            ids[row] = -1;
            depths[row] = (int32_t)t->stack.len;
            continue;
        }
        if (call < 0)
            return -1;
        ids[row] = global_index(self, call);
    }
    return 0;
}

/* --- the Python type --------------------------------------------------------------- */

static int check_usable(Pairer *self)
{
    if (self->busy) {
        PyErr_SetString(PyExc_RuntimeError, "Pairer: in use by another thread's feed()");
        return -1;
    }
    if (self->broken) {
        PyErr_SetString(PyExc_RuntimeError,
                        "Pairer: memory ran out during an earlier feed(); its state is incomplete");
        return -1;
    }
    return 0;
}

/* A format character of native integers, after an optional native byte-order prefix. */
static int integer_format(const char *f)
{
    if (!f)
        return 1; /* no format: unsigned bytes */
    if (*f == '@' || *f == '=')
        f++;
#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    else if (*f == '<')
        f++;
#endif
    return f[0] && !f[1] && strchr("bBhHiIlLqQnN", f[0]) != NULL;
}

/* Get one input column; the messages are those of calls._column, the twin's check. */
static int get_column(PyObject *obj, int k, Py_buffer *view)
{
    if (!PyObject_CheckBuffer(obj)) {
        PyErr_Format(PyExc_TypeError,
                     "Pairer.feed: %s must be a 1-d array of %zd-byte integers "
                     "(an object with the buffer protocol), not %.100s",
                     in_names[k], in_sizes[k], Py_TYPE(obj)->tp_name);
        return -1;
    }
    if (PyObject_GetBuffer(obj, view, PyBUF_RECORDS_RO) < 0)
        return -1;
    const char *format = view->format ? view->format : "B";
    if (view->ndim != 1 || !PyBuffer_IsContiguous(view, 'C') || view->itemsize != in_sizes[k] ||
        !integer_format(view->format)) {
        PyErr_Format(PyExc_ValueError,
                     "Pairer.feed: %s must be a 1-d contiguous array of %zd-byte integers, "
                     "got %d dimension(s), format '%.20s', item size %zd%s",
                     in_names[k], in_sizes[k], view->ndim, format, view->itemsize,
                     view->ndim == 1 && !PyBuffer_IsContiguous(view, 'C') ? ", not contiguous" : "");
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

PyDoc_STRVAR(feed_doc,
"feed(task, kind, pc, arg_idx, seq, ptr, value0) -> (ids, depths)\n\n"
"Pair one batch of records, in buffer order, after the batches fed before.\n"
"Columns (1-d contiguous arrays of native integers): task (4 bytes), kind (1: a code\n"
"of kcovdf.read.decode.KINDS), pc (8), arg_idx (1), seq (4), ptr (8: format 2, the call\n"
"id), value0 (8: a record's first value word, read for resume records only; 0: none).\n"
"ids: bytearray of native int64, the call index of every record (-1: none);\n"
"depths: bytearray of native int32, the depth every record is drawn at.");

static PyObject *pairer_feed(Pairer *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"task", "kind", "pc", "arg_idx", "seq", "ptr", "value0", NULL};
    PyObject *obj[NIN];
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OOOOOOO:feed", kwlist, &obj[0], &obj[1],
                                     &obj[2], &obj[3], &obj[4], &obj[5], &obj[6]))
        return NULL;
    if (check_usable(self) < 0)
        return NULL;
    Py_buffer in[NIN];
    const void *col[NIN];
    void *copies[NIN] = {NULL};
    int got = 0;
    PyObject *ids = NULL, *depths = NULL, *result = NULL;
    for (; got < NIN; got++) {
        if (get_column(obj[got], got, &in[got]) < 0)
            goto done;
        col[got] = in[got].buf;
        if ((uintptr_t)col[got] % (uintptr_t)in_sizes[got]) { /* say, bytes sliced at an odd offset */
            if (!(copies[got] = malloc(in[got].len ? (size_t)in[got].len : 1))) {
                PyErr_NoMemory();
                got++;
                goto done;
            }
            memcpy(copies[got], in[got].buf, (size_t)in[got].len);
            col[got] = copies[got];
        }
    }
    Py_ssize_t n = in[0].len / in_sizes[0];
    for (int k = 1; k < NIN; k++) {
        if (in[k].len / in_sizes[k] != n) {
            PyErr_Format(PyExc_ValueError,
                         "Pairer.feed: the columns have different lengths: task %zd, kind %zd, "
                         "pc %zd, arg_idx %zd, seq %zd, ptr %zd, value0 %zd",
                         n, in[1].len, in[2].len / 8, in[3].len, in[4].len / 4, in[5].len / 8,
                         in[6].len / 8);
            goto done;
        }
    }
    /* checked whole before any state changes, so a bad batch leaves the pairer as it was */
    const int32_t *task = col[IN_TASK];
    const int8_t *kind = col[IN_KIND];
    for (Py_ssize_t row = 0; row < n; row++) {
        if (task[row] < 0) {
            PyErr_Format(PyExc_ValueError, "Pairer.feed: task %d at row %zd is negative",
                         (int)task[row], row);
            goto done;
        }
    }
    for (Py_ssize_t row = 0; row < n; row++) {
        if (kind[row] < 0 || kind[row] >= NKINDS) {
            PyErr_Format(PyExc_ValueError,
                         "Pairer.feed: kind %d at row %zd is not a kind code (0 to %d)",
                         (int)kind[row], row, NKINDS - 1);
            goto done;
        }
    }
    if ((n && take_back(self) < 0) || !(ids = PyByteArray_FromStringAndSize(NULL, n * 8)) ||
        !(depths = PyByteArray_FromStringAndSize(NULL, n * 4)))
        goto done;
    /* Room for a call per record, the most a batch can open, at once: growing by doubling
     * copies every column each time (realloc), while untouched room costs no memory. If it
     * cannot be had, the columns grow as calls come. */
    (void)calls_reserve(&self->c, self->c.len + n);
    int rc;
    self->busy = 1;
    Py_BEGIN_ALLOW_THREADS
    rc = feed_loop(self, col, n, (int64_t *)PyByteArray_AS_STRING(ids),
                   (int32_t *)PyByteArray_AS_STRING(depths));
    Py_END_ALLOW_THREADS
    self->busy = 0;
    if (rc < 0) {
        self->broken = 1;
        PyErr_NoMemory();
        goto done;
    }
    result = PyTuple_Pack(2, ids, depths);
done:
    Py_XDECREF(ids);
    Py_XDECREF(depths);
    for (int k = 0; k < got; k++) {
        free(copies[k]);
        PyBuffer_Release(&in[k]);
    }
    return result;
}

PyDoc_STRVAR(task_doc,
"task(index, format, pid)\n\n"
"Declare a task before its first record: format >= 2 pairs its records by (pid, call\n"
"id), format 1 by stack and pc (also every task never declared).");

static PyObject *pairer_task(Pairer *self, PyObject *args)
{
    int index, format;
    long long pid;
    if (!PyArg_ParseTuple(args, "iiL:task", &index, &format, &pid) || check_usable(self) < 0)
        return NULL;
    if (index < 0) {
        PyErr_Format(PyExc_ValueError, "Pairer.task: index %d is negative", index);
        return NULL;
    }
    if (format < 1) {
        PyErr_Format(PyExc_ValueError, "Pairer.task: format %d is not a record format (1 or 2)",
                     format);
        return NULL;
    }
    Py_ssize_t at = task_slot(self, index);
    if (at < 0)
        return PyErr_NoMemory();
    task_state *t = &self->tasks[at];
    if (t->started) {
        PyErr_Format(PyExc_ValueError,
                     "Pairer.task: task %d already has records; declare a task before feeding them",
                     index);
        return NULL;
    }
    t->format = format;
    t->pid = pid;
    Py_RETURN_NONE;
}

/* A tuple of NOUT empty Columns (columns() and drain() fill them), or NULL. */
static PyObject *new_columns(void)
{
    PyObject *out = PyTuple_New(NOUT);
    for (int k = 0; out && k < NOUT; k++) {
        Column *col = PyObject_New(Column, &ColumnType);
        if (!col) {
            Py_CLEAR(out);
            break;
        }
        col->data = NULL;
        col->len = 0;
        PyTuple_SET_ITEM(out, k, (PyObject *)col);
    }
    return out;
}

PyDoc_STRVAR(columns_doc,
"columns() -> tuple of read-only buffers\n\n"
"Every call not drained yet, in call order, one buffer of native integers per column:\n"
"call (i64: the call's index, what feed() returns), call_id (u64), pc (u64), parent\n"
"(i64, -1: none), task (i32), depth (i32), entry_seq, exit_seq (u32), nargs, yields,\n"
"suspends, resumes (i32), last_seq (u32), last_arg (i16, -1: none), exit (i8: the kind\n"
"code that ended the call, -1: none), flags (u8: 1 call_id, 2 entry_seq, 4 exit_seq,\n"
"8 last_seq are set), then resumers (i64, -1: unknown): every call's resumers in call\n"
"order, resumes of them per call. The pairer's own arrays, handed over without a copy;\n"
"the same object until the next feed() or drain().");

static PyObject *pairer_columns(Pairer *self, PyObject *unused)
{
    (void)unused;
    if (check_usable(self) < 0)
        return NULL;
    if (self->exported) {
        Py_INCREF(self->exported);
        return self->exported;
    }
    calls *c = &self->c;
    Py_ssize_t n = c->len, nres = self->resumed.len;
    /* every object first, so that a failure leaves the pairer as it was */
    PyObject *out = new_columns();
    int64_t *flat = malloc((size_t)(nres ? nres : 1) * sizeof(int64_t));
    int64_t *start = malloc((size_t)(n ? n : 1) * sizeof(int64_t));
    int64_t *index = malloc((size_t)(n ? n : 1) * sizeof(int64_t));
    if (!out || !flat || !start || !index) {
        Py_XDECREF(out);
        free(flat);
        free(start);
        free(index);
        return PyErr_Occurred() ? NULL : PyErr_NoMemory();
    }
    for (Py_ssize_t i = 0; i < n; i++)
        index[i] = global_index(self, i);
    Column *call = (Column *)PyTuple_GET_ITEM(out, OUT_CALL);
    call->data = index;
    call->len = n * 8;
    /* the resume log grouped by call, each call's in log order: a counting sort */
    int64_t sum = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        start[i] = sum;
        sum += c->resumes[i];
    }
    for (Py_ssize_t i = 0; i < nres; i++)
        flat[start[self->resumed.v[i]]++] = self->resumer.v[i];
    free(start);
    Column *res = (Column *)PyTuple_GET_ITEM(out, OUT_RESUMERS);
    res->data = flat;
    res->len = nres * 8;
    int k = OUT_COLS;
#define X(type, name)                                                                        \
    if (c->name) { /* give back what the last growth reserved (cannot fail) */               \
        void *fit = realloc(c->name, (size_t)(n ? n : 1) * sizeof(type));                    \
        if (fit)                                                                             \
            c->name = fit;                                                                   \
    }                                                                                        \
    ((Column *)PyTuple_GET_ITEM(out, k))->data = c->name;                                    \
    ((Column *)PyTuple_GET_ITEM(out, k))->len = n * (Py_ssize_t)sizeof(type);                \
    k++;
    CALL_COLUMNS(X)
#undef X
    Py_INCREF(out);
    self->exported = out;
    return out;
}

/* The room of a call-id table that holds n entries and may take as many again. */
static size_t map_size_for(size_t n)
{
    size_t size = 1024;
    while (size < 4 * n)
        size *= 2;
    return size;
}

/* Give back the room of a vector far larger than its length (cannot fail). */
static void vec_shrink(vec *a)
{
    if (a->cap <= 1024 || a->len >= a->cap / 4)
        return;
    Py_ssize_t cap = 2 * a->len > 1024 ? 2 * a->len : 1024;
    int64_t *fit = realloc(a->v, (size_t)cap * sizeof(int64_t));
    if (fit) {
        a->v = fit;
        a->cap = cap;
    }
}

PyDoc_STRVAR(drain_doc,
"drain() -> tuple of read-only buffers\n\n"
"The calls finished since the last drain(), laid out as columns() (their resumers\n"
"too), and forgotten: columns() and the next drain() no longer have them. A call is\n"
"finished when it has its exit (return or exception), is on no task's stack or\n"
"suspended list and is not a call whose arguments are still arriving. Its index stays\n"
"its own. Its call id is forgotten too: a later record naming it is a new call, where\n"
"without the drain a record other than an entry (or a resume naming it as resumer)\n"
"would have found the finished call (input the writer does not make).");

static PyObject *pairer_drain(Pairer *self, PyObject *unused)
{
    (void)unused;
    if (check_usable(self) < 0)
        return NULL;
    calls *c = &self->c;
    Py_ssize_t n = c->len, nres = self->resumed.len;
    PyObject *out = new_columns();
    /* to[slot]: the call's slot after the drain when it stays, -1 - its row in the drained
     * when it goes: what rewrites every reference to a slot */
    int64_t *to = malloc((size_t)(n ? n : 1) * sizeof(int64_t));
    if (!out || !to) {
        Py_XDECREF(out);
        free(to);
        return PyErr_Occurred() ? NULL : PyErr_NoMemory();
    }
    for (Py_ssize_t i = 0; i < n; i++)
        to[i] = c->exit[i] >= 0 && !c->nstacks[i] ? -1 : 0;
    for (Py_ssize_t k = 0; k < self->ntasks; k++) {
        const task_state *t = &self->tasks[k];
        for (Py_ssize_t i = 0; i < t->suspended.len; i++)
            to[t->suspended.v[i]] = 0;
        if (t->collecting >= 0)
            to[t->collecting] = 0;
    }
    Py_ssize_t kept = 0, nd = 0, nres_d = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (to[i] < 0) {
            to[i] = -1 - nd++;
            nres_d += c->resumes[i];
        } else {
            to[i] = kept++;
        }
    }
    if (!nd) { /* nothing finished: the state stays as it is, columns() too */
        free(to);
        return out;
    }

    /* every allocation before any change, so that a failure leaves the pairer as it was */
    void *col[NCOLS] = {NULL};
    int64_t *index = malloc((size_t)nd * sizeof(int64_t));
    int64_t *surv = malloc((size_t)(kept ? kept : 1) * sizeof(int64_t));
    int64_t *flat = malloc((size_t)(nres_d ? nres_d : 1) * sizeof(int64_t));
    int64_t *start = malloc((size_t)nd * sizeof(int64_t));
    slot **fresh = calloc((size_t)(self->nids ? self->nids : 1), sizeof(slot *));
    size_t *fresh_size = calloc((size_t)(self->nids ? self->nids : 1), sizeof(size_t));
    int ok = index && surv && flat && start && fresh && fresh_size;
    for (int k = 0; ok && k < NCOLS; k++)
        ok = (col[k] = malloc((size_t)nd * col_size[k])) != NULL;
    for (Py_ssize_t p = 0; ok && p < self->nids; p++) {
        /* the ids of the calls that stay, in a table their size: the old one only grew */
        const map *m = &self->ids[p];
        size_t count = 0;
        for (size_t i = 0; m->s && i <= m->mask; i++)
            count += m->s[i].stored && to[m->s[i].stored - 1] >= 0;
        if (count) {
            fresh_size[p] = map_size_for(count);
            ok = (fresh[p] = calloc(fresh_size[p], sizeof(slot))) != NULL;
        }
    }
    if (!ok)
        PyErr_NoMemory();
    if (!ok || take_back(self) < 0) { /* the Columns of the last columns() keep theirs */
        for (int k = 0; k < NCOLS; k++)
            free(col[k]);
        for (Py_ssize_t p = 0; fresh && p < self->nids; p++)
            free(fresh[p]);
        free(index);
        free(surv);
        free(flat);
        free(start);
        free(fresh);
        free(fresh_size);
        free(to);
        Py_DECREF(out);
        return NULL;
    }

    /* the indexes: the drained calls' out, the others' kept for their new slots; the slots
     * of the calls to come count on from the next index */
    int64_t next = c->len + self->shift;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (to[i] < 0)
            index[-1 - to[i]] = global_index(self, i);
        else
            surv[to[i]] = global_index(self, i);
    }
    free(self->surv);
    self->surv = surv;
    self->nsurv = kept;
    self->shift = next - kept;
    Column *call = (Column *)PyTuple_GET_ITEM(out, OUT_CALL);
    call->data = index;
    call->len = nd * 8;

    /* the columns: the drained rows out, the others down to their new slots (in order) */
    int k = OUT_COLS;
#define X(type, name)                                                                        \
    {                                                                                        \
        type *a = c->name, *o = col[k - OUT_COLS];                                           \
        Py_ssize_t m = 0, j = 0;                                                             \
        for (Py_ssize_t i = 0; i < n; i++) {                                                 \
            if (to[i] < 0)                                                                   \
                o[j++] = a[i];                                                               \
            else                                                                             \
                a[m++] = a[i];                                                               \
        }                                                                                    \
        Column *out_col = (Column *)PyTuple_GET_ITEM(out, k);                                \
        out_col->data = o;                                                                   \
        out_col->len = nd * (Py_ssize_t)sizeof(type);                                        \
        k++;                                                                                 \
    }
    CALL_COLUMNS(X)
#undef X
    for (Py_ssize_t i = 0, m = 0; i < n; i++)
        if (to[i] >= 0)
            c->nstacks[m++] = c->nstacks[i];

    /* the resume log: the drained calls' entries out, grouped by call (as in columns()) */
    const int32_t *resumes = col[COL_resumes]; /* the drained calls' */
    int64_t sum = 0;
    for (Py_ssize_t j = 0; j < nd; j++) {
        start[j] = sum;
        sum += resumes[j];
    }
    Py_ssize_t m = 0;
    for (Py_ssize_t i = 0; i < nres; i++) {
        int64_t at = to[self->resumed.v[i]];
        if (at < 0) {
            flat[start[-1 - at]++] = self->resumer.v[i];
        } else {
            self->resumed.v[m] = at;
            self->resumer.v[m++] = self->resumer.v[i];
        }
    }
    self->resumed.len = self->resumer.len = m;
    free(start);
    Column *res = (Column *)PyTuple_GET_ITEM(out, OUT_RESUMERS);
    res->data = flat;
    res->len = nres_d * 8;

    /* every slot held: on stacks and suspended lists (none of them drained), collecting */
    for (Py_ssize_t j = 0; j < self->ntasks; j++) {
        task_state *t = &self->tasks[j];
        for (Py_ssize_t i = 0; i < t->stack.len; i++)
            t->stack.v[i] = to[t->stack.v[i]];
        for (Py_ssize_t i = 0; i < t->suspended.len; i++)
            t->suspended.v[i] = to[t->suspended.v[i]];
        if (t->collecting >= 0)
            t->collecting = to[t->collecting];
    }
    for (Py_ssize_t p = 0; p < self->nids; p++) {
        map *old = &self->ids[p];
        map t = {fresh[p], fresh[p] ? fresh_size[p] - 1 : 0, 0, old->mixed};
        size_t probes;
        for (size_t i = 0; old->s && i <= old->mask; i++) {
            if (!old->s[i].stored || to[old->s[i].stored - 1] < 0)
                continue;
            slot *s = map_slot(&t, old->s[i].key, &probes); /* a long run: the next lookup mixes */
            s->key = old->s[i].key;
            s->stored = (uint64_t)to[old->s[i].stored - 1] + 1;
            t.used++;
        }
        free(old->s);
        *old = t;
    }
    free(fresh);
    free(fresh_size);
    free(to);

    c->len = kept;
    if (c->cap > 1024 && kept < c->cap / 4) { /* give the room back (a failed realloc keeps more) */
        Py_ssize_t cap = 2 * kept > 1024 ? 2 * kept : 1024;
#define X(type, name)                                                                        \
    {                                                                                        \
        void *fit = realloc(c->name, (size_t)cap * sizeof(type));                            \
        if (fit)                                                                             \
            c->name = fit;                                                                   \
    }
        CALL_COLUMNS(X)
        X(int32_t, nstacks)
#undef X
        c->cap = cap;
    }
    vec_shrink(&self->resumed);
    vec_shrink(&self->resumer);
    return out;
}

static PyObject *pairer_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, ":Pairer", kwlist))
        return NULL;
    return type->tp_alloc(type, 0); /* zeroed: empty arrays and tables */
}

static void pairer_dealloc(Pairer *self)
{
    if (self->exported) { /* its Columns own the columns */
#define X(type, name) self->c.name = NULL;
        CALL_COLUMNS(X)
#undef X
        Py_CLEAR(self->exported);
    }
    calls_free(&self->c);
    free(self->surv);
    free(self->resumed.v);
    free(self->resumer.v);
    for (Py_ssize_t i = 0; i < self->nids; i++)
        free(self->ids[i].s);
    free(self->ids);
    free(self->pids.s);
    free(self->slots.s);
    for (Py_ssize_t i = 0; i < self->ntasks; i++) {
        free(self->tasks[i].stack.v);
        free(self->tasks[i].suspended.v);
    }
    free(self->tasks);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef pairer_methods[] = {
    {"task", (PyCFunction)pairer_task, METH_VARARGS, task_doc},
    {"feed", (PyCFunction)(void (*)(void))pairer_feed, METH_VARARGS | METH_KEYWORDS, feed_doc},
    {"columns", (PyCFunction)pairer_columns, METH_NOARGS, columns_doc},
    {"drain", (PyCFunction)pairer_drain, METH_NOARGS, drain_doc},
    {NULL, NULL, 0, NULL},
};

PyDoc_STRVAR(pairer_doc,
"Pairer()\n\n"
"The streaming call pairer: declare tasks with task(), feed records in buffer order\n"
"with feed(), read the calls with columns(), take the finished ones out with drain().\n"
"kcovdf.read.calls.Pairer is its twin.");

static PyTypeObject PairerType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "kcovdf._core._pair.Pairer",
    .tp_basicsize = sizeof(Pairer),
    .tp_dealloc = (destructor)pairer_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = pairer_doc,
    .tp_methods = pairer_methods,
    .tp_new = pairer_new,
};

static struct PyModuleDef pair_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "kcovdf._core._pair",
    .m_doc = "The call pairer of kcovdf.read.calls (twin: kcovdf.read.calls.Pairer).",
    .m_size = -1,
};

PyMODINIT_FUNC PyInit__pair(void)
{
    if (PyType_Ready(&PairerType) < 0 || PyType_Ready(&ColumnType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&pair_module);
    if (!m)
        return NULL;
    Py_INCREF(&PairerType);
    if (PyModule_AddObject(m, "Pairer", (PyObject *)&PairerType) < 0) {
        Py_DECREF(&PairerType);
        Py_DECREF(m);
        return NULL;
    }
    Py_INCREF(&ColumnType);
    if (PyModule_AddObject(m, "Column", (PyObject *)&ColumnType) < 0) {
        Py_DECREF(&ColumnType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
