/* Optional compiled kernels of swirl_env.tools.bm25: the index build and exact BM25 top-k queries.
 *
 * Plain C over the buffer protocol (no numpy headers); each function releases the GIL while it works.
 * bm25.py holds the numpy reference of everything here, and the two give the same index and the same
 * documents in the same order; bm25_fast.py loads this module and wraps it.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define KERNEL_VERSION 2 /* bm25_fast.py refuses a module built from other sources (a stale build) */

/* ------------------------------------------------------------------------------------------------
 * Index build. Each function stands for numpy code of bm25.py, and the index comes out identical
 * (tests compare the two): split_pieces for bm25_build._split_numpy, probe for bm25_build._probe, count_terms for
 * bm25_build._count_numpy, list_counts and scatter for bm25_build._sorted_postings.
 * ------------------------------------------------------------------------------------------------ */

#define GOLDEN 0x9E3779B97F4A7C15ULL
#define MIX 0xBF58476D1CE4E5B9ULL
#define UNSEEN INT32_MIN /* a piece code not assigned yet (bm25_build._UNSEEN) */

static uint8_t WORD[256]; /* 1 for bytes that can be part of a \w+ token: ASCII letters, digits, '_', bytes >= 0x80 */

static inline uint64_t load_le64(const uint8_t *p) {
    uint64_t v;
    memcpy(&v, p, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    return v;
}

static inline uint64_t low_bytes(uint64_t v, Py_ssize_t n) { return n >= 8 ? v : v & ((1ULL << (8 * n)) - 1); }

/* A piece's key: its bytes if at most 8, else a 64-bit hash with the top bit set (bm25_build._piece_keys).
 * Reads up to 7 bytes past the piece, which the caller's zero padding allows. */
static inline uint64_t piece_key(const uint8_t *p, Py_ssize_t len) {
    uint64_t key = low_bytes(load_le64(p), len);
    for (Py_ssize_t off = 8; off < len; off += 8)
        key = (((key ^ (key >> 31)) * MIX) ^ low_bytes(load_le64(p + off), len - off)) | (1ULL << 63);
    return key;
}

/* Open addressing from a nonzero key to a local piece id, at most half full; key and id share a cache line. */
typedef struct {
    uint64_t key;
    int64_t id;
} Slot;

typedef struct {
    Slot *slots;
    int bits;
} Table;

static int table_alloc(Table *t, int bits) {
    t->bits = bits;
    t->slots = calloc((size_t)1 << bits, sizeof *t->slots);
    return t->slots ? 0 : -1;
}

static inline Slot *table_slot(const Table *t, uint64_t key) {
    size_t mask = ((size_t)1 << t->bits) - 1, h = (size_t)((key * GOLDEN) >> (64 - t->bits));
    while (t->slots[h].key != 0 && t->slots[h].key != key) h = (h + 1) & mask;
    return &t->slots[h];
}

static int table_grow(Table *t) {
    Table old = *t;
    if (table_alloc(t, old.bits + 1) < 0) { *t = old; return -1; }
    for (size_t i = 0; i < (size_t)1 << old.bits; i++)
        if (old.slots[i].key) *table_slot(t, old.slots[i].key) = old.slots[i];
    free(old.slots);
    return 0;
}

/* The results as bytearrays, allocated at their bounds (pages never written are never committed), cut to size. */
typedef struct {
    PyObject *obj[4];
    int n;
} Outs;

static void *out_alloc(Outs *o, Py_ssize_t bytes) {
    PyObject *a = PyByteArray_FromStringAndSize(NULL, bytes);
    if (!a) return NULL;
    o->obj[o->n++] = a;
    return PyByteArray_AS_STRING(a);
}

/* A tuple of the outputs cut to sizes (bytes), or NULL; releases them either way. ok: no error so far. */
static PyObject *outs_finish(Outs *o, const Py_ssize_t *sizes, int ok) {
    PyObject *result = NULL;
    for (int i = 0; ok && i < o->n; i++) ok = PyByteArray_Resize(o->obj[i], sizes[i]) == 0;
    if (ok) result = PyTuple_New(o->n);
    for (int i = 0; i < o->n; i++) {
        if (result) PyTuple_SET_ITEM(result, i, o->obj[i]);
        else Py_DECREF(o->obj[i]);
    }
    o->n = 0;
    return result;
}

#define AHEAD 16 /* pieces whose table slots are prefetched before they are looked up: the table outgrows the cache */

typedef struct {
    const uint8_t *raw;
    uint64_t *keys;
    int64_t *spans;
    int32_t *ids;
    Py_ssize_t n_tokens, n_distinct;
    Table table;
} Split;

/* Look up (or insert) the pending pieces, in order; -1 when out of memory. */
static int split_flush(Split *s, const int64_t (*pending)[2], const uint64_t *keys, int n) {
    for (int j = 0; j < n; j++) {
        Slot *slot = table_slot(&s->table, keys[j]);
        if (slot->key == 0) {
            Py_ssize_t id = s->n_distinct++;
            slot->key = keys[j], slot->id = id;
            s->keys[id] = keys[j];
            s->spans[2 * id] = pending[j][0], s->spans[2 * id + 1] = pending[j][1];
            if (2 * s->n_distinct > (Py_ssize_t)1 << s->table.bits && table_grow(&s->table) < 0) return -1;
            s->ids[s->n_tokens++] = (int32_t)id;
        } else {
            s->ids[s->n_tokens++] = (int32_t)slot->id;
        }
    }
    return 0;
}

/* Scan n bytes into pieces numbered by first occurrence and document starts; -1 when out of memory. */
static int split_scan(Split *s, Py_ssize_t n, int64_t *docs, Py_ssize_t *n_docs) {
    int bits = 10;
    while (bits < 20 && ((Py_ssize_t)1 << bits) < n / 8) bits++; /* text holds a distinct piece per ~25 bytes */
    if (table_alloc(&s->table, bits) < 0) return -1;
    const uint8_t *raw = s->raw;
    int64_t pending[AHEAD][2];
    uint64_t keys[AHEAD];
    Py_ssize_t nn = 0;
    int np = 0, failed = 0;
    docs[0] = 0;
    for (Py_ssize_t i = 0; i < n && !failed;) {
        uint8_t c = raw[i];
        if (!WORD[c]) {
            if (c == 0) docs[++nn] = s->n_tokens + np; /* NUL separates documents */
            i++;
            continue;
        }
        Py_ssize_t start = i;
        while (WORD[raw[i]]) i++; /* the zero padding stops it */
        keys[np] = piece_key(raw + start, i - start);
        __builtin_prefetch(&s->table.slots[(keys[np] * GOLDEN) >> (64 - s->table.bits)]);
        pending[np][0] = start, pending[np][1] = i;
        if (++np == AHEAD) failed = split_flush(s, pending, keys, np) < 0, np = 0;
    }
    failed = failed || split_flush(s, pending, keys, np) < 0;
    docs[++nn] = s->n_tokens;
    free(s->table.slots);
    *n_docs = nn;
    return failed ? -1 : 0;
}

static PyObject *py_split_pieces(PyObject *self, PyObject *arg) {
    (void)self;
    Py_buffer b;
    if (PyObject_GetBuffer(arg, &b, PyBUF_SIMPLE) < 0) return NULL;
    Split s = {.raw = b.buf};
    Py_ssize_t n = b.len - 8;
    int padded = n >= 0;
    for (Py_ssize_t i = n; padded && i < b.len; i++) padded = s.raw[i] == 0;
    if (!padded) {
        PyBuffer_Release(&b);
        return PyErr_Format(PyExc_ValueError, "expected the chunk to end in 8 zero bytes, actual %zd bytes", b.len);
    }
    Py_ssize_t cap = n / 2 + 1, n_docs = 0; /* pieces are at least one byte and are separated */
    if (cap > INT32_MAX) { PyBuffer_Release(&b); return PyErr_Format(PyExc_ValueError, "chunk too large: %zd bytes", n); }
    Outs o = {.n = 0};
    int64_t *docs;
    int ok = (s.keys = out_alloc(&o, cap * 8)) && (s.spans = out_alloc(&o, cap * 16)) && (s.ids = out_alloc(&o, cap * 4)) &&
             (docs = out_alloc(&o, (n + 2) * 8));
    if (ok) {
        Py_BEGIN_ALLOW_THREADS
        ok = split_scan(&s, n, docs, &n_docs) == 0;
        Py_END_ALLOW_THREADS
        if (!ok) PyErr_NoMemory();
    }
    Py_ssize_t sizes[4] = {s.n_distinct * 8, s.n_distinct * 16, s.n_tokens * 4, (n_docs + 1) * 8};
    PyBuffer_Release(&b);
    return outs_finish(&o, sizes, ok);
}

/* Borrowed buffers of the arguments, released together. */
typedef struct {
    Py_buffer v[16];
    int n;
} Views;

static void views_release(Views *vs) {
    while (vs->n > 0) PyBuffer_Release(&vs->v[--vs->n]);
}

/* The C-contiguous buffer of obj with items of itemsize bytes (at least min_items), or NULL with an error set. */
static void *view(Views *vs, PyObject *obj, int writable, Py_ssize_t itemsize, Py_ssize_t min_items, const char *name,
                  Py_ssize_t *n_items) {
    Py_buffer *v = &vs->v[vs->n];
    if (PyObject_GetBuffer(obj, v, (writable ? PyBUF_WRITABLE : 0) | PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) return NULL;
    vs->n++;
    if (v->itemsize != itemsize || v->len / itemsize < min_items) {
        PyErr_Format(PyExc_ValueError, "expected %s to hold at least %zd items of %zd bytes, actual %zd items of %zd bytes",
                     name, min_items, itemsize, v->len / (v->itemsize ? v->itemsize : 1), v->itemsize);
        return NULL;
    }
    if (n_items) *n_items = v->len / itemsize;
    return v->buf;
}

/* probe(table, keys) -> (slots,) (int64 bytearray): bm25_build._probe with linear probing, slots prefetched ahead. */
static PyObject *py_probe(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *o[2];
    if (!PyArg_ParseTuple(args, "OO", &o[0], &o[1])) return NULL;
    Views vs = {.n = 0};
    Outs out = {.n = 0};
    Py_ssize_t size = 0, n = 0;
    uint64_t *table, *keys;
    int64_t *slots;
    int ok = (table = view(&vs, o[0], 1, 8, 1, "table", &size)) && (keys = view(&vs, o[1], 0, 8, 0, "keys", &n));
    if (ok && (size & (size - 1))) PyErr_SetString(PyExc_ValueError, "expected a table whose size is a power of 2"), ok = 0;
    ok = ok && (slots = out_alloc(&out, n * 8));
    int bits = 0;
    while (((Py_ssize_t)1 << bits) < size) bits++;
    Py_ssize_t i = 0;
    if (ok) {
        Py_BEGIN_ALLOW_THREADS
        for (; i < n; i++) {
            if (i + AHEAD < n) __builtin_prefetch(&table[bits ? (keys[i + AHEAD] * GOLDEN) >> (64 - bits) : 0]);
            size_t h = bits ? (size_t)((keys[i] * GOLDEN) >> (64 - bits)) : 0;
            Py_ssize_t steps = 0;
            while (table[h] != 0 && table[h] != keys[i] && ++steps < size) h = (h + 1) & (size - 1);
            if (steps == size) break; /* full */
            if (table[h] == 0) table[h] = keys[i];
            slots[i] = (int64_t)h;
        }
        Py_END_ALLOW_THREADS
        if (i < n) PyErr_SetString(PyExc_ValueError, "expected a table with more slots than keys"), ok = 0;
    }
    Py_ssize_t sizes[1] = {n * 8};
    views_release(&vs);
    return outs_finish(&out, sizes, ok);
}

typedef struct {
    const int32_t *codes, *pieces, *multi_terms;
    const int64_t *doc_starts, *multi_start;
    Py_ssize_t n_codes, n_pieces, n_multi_terms, n_multi, n_docs, n_terms;
    int32_t *seen; /* per term t: seen[2t] the last document that held it, seen[2t + 1] its pair there */
    int64_t first_doc;
} Counting;

/* The number of term occurrences in the chunk, or a negative error code (see count_error). */
static int64_t count_occurrences(const Counting *c) {
    const int64_t *ds = c->doc_starts, *ms = c->multi_start;
    if (ds[0] != 0 || ds[c->n_docs] != c->n_pieces) return -1;
    for (Py_ssize_t d = 0; d < c->n_docs; d++) if (ds[d + 1] < ds[d]) return -1;
    for (Py_ssize_t k = 0; k < c->n_multi; k++) if (ms[k] < 0 || ms[k + 1] < ms[k] || ms[k + 1] > c->n_multi_terms) return -2;
    for (Py_ssize_t j = 0; j < c->n_multi_terms; j++) if (c->multi_terms[j] < 0 || c->multi_terms[j] >= c->n_terms) return -3;
    int64_t total = 0;
    for (Py_ssize_t i = 0; i < c->n_pieces; i++) {
        int32_t p = c->pieces[i];
        if (p < 0 || p >= c->n_codes) return -4;
        int32_t code = c->codes[p];
        if (code >= 0) {
            if (code >= c->n_terms) return -3;
            total++;
        } else if (code == UNSEEN || -2 - (int64_t)code >= c->n_multi) {
            return -5;
        } else if (code != -1) {
            total += ms[-2 - (int64_t)code + 1] - ms[-2 - (int64_t)code];
        }
    }
    return total;
}

static PyObject *count_error(int64_t code) {
    static const char *what[] = {"", "doc_starts are not ascending from 0 to the number of pieces",
                                 "multi_start is not ascending within multi_terms", "a term id is past the scratch array",
                                 "a piece id is past the codes", "a piece code is unassigned or past multi_start"};
    return PyErr_Format(PyExc_ValueError, "count_terms: %s", what[-code]);
}

/* Each document's distinct terms, in order of first occurrence, and their counts. */
static void count_pairs(const Counting *c, int32_t *terms, int32_t *tfs, int64_t *doc_ptr, int64_t *doc_len) {
    int64_t p = 0;
    int32_t *seen = c->seen;
    for (Py_ssize_t d = 0; d < c->n_docs; d++) {
        int32_t doc = (int32_t)(c->first_doc + d);
        int64_t len = 0;
        doc_ptr[d] = p;
        for (int64_t i = c->doc_starts[d]; i < c->doc_starts[d + 1]; i++) {
            int32_t code = c->codes[c->pieces[i]];
            const int32_t *ts = &code;
            int64_t m = 1;
            if (code == -1) continue; /* stopwords only */
            if (code < 0) {
                int64_t k = -2 - (int64_t)code;
                ts = c->multi_terms + c->multi_start[k];
                m = c->multi_start[k + 1] - c->multi_start[k];
            }
            for (int64_t j = 0; j < m; j++) {
                int32_t *s = seen + 2 * (int64_t)ts[j];
                if (s[0] != doc) { s[0] = doc; s[1] = (int32_t)p; terms[p] = ts[j]; tfs[p++] = 1; }
                else tfs[s[1]]++;
            }
            len += m;
        }
        doc_len[d] = len;
    }
    doc_ptr[c->n_docs] = p;
}

static PyObject *py_count_terms(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *o[6];
    Counting c = {0};
    if (!PyArg_ParseTuple(args, "OOOOOOL", &o[0], &o[1], &o[2], &o[3], &o[4], &o[5], &c.first_doc)) return NULL;
    Views vs = {.n = 0};
    Outs out = {.n = 0};
    Py_ssize_t n_starts = 1, n_seen = 0;
    int ok = (c.codes = view(&vs, o[0], 0, 4, 0, "codes", &c.n_codes)) &&
             (c.pieces = view(&vs, o[1], 0, 4, 0, "piece_ids", &c.n_pieces)) &&
             (c.doc_starts = view(&vs, o[2], 0, 8, 1, "doc_starts", &n_starts)) &&
             (c.multi_terms = view(&vs, o[3], 0, 4, 0, "multi_terms", &c.n_multi_terms)) &&
             (c.multi_start = view(&vs, o[4], 0, 8, 1, "multi_start", &c.n_multi)) &&
             (c.seen = view(&vs, o[5], 1, 4, 0, "seen", &n_seen));
    c.n_docs = n_starts - 1, c.n_multi -= 1, c.n_terms = n_seen / 2;
    if (ok && (c.first_doc < 0 || c.first_doc + c.n_docs > INT32_MAX)) {
        PyErr_Format(PyExc_ValueError, "expected document ids within int32, actual up to %lld",
                     (long long)(c.first_doc + c.n_docs));
        ok = 0;
    }
    int64_t total = 0;
    if (ok) {
        Py_BEGIN_ALLOW_THREADS
        total = count_occurrences(&c);
        Py_END_ALLOW_THREADS
        if (total < 0) count_error(total), ok = 0;
        else if (total >= INT32_MAX) PyErr_SetString(PyExc_ValueError, "count_terms: too many terms in one chunk"), ok = 0;
    }
    int32_t *terms, *tfs;
    int64_t *doc_ptr, *doc_len;
    ok = ok && (terms = out_alloc(&out, total * 4)) && (tfs = out_alloc(&out, total * 4)) &&
         (doc_ptr = out_alloc(&out, (c.n_docs + 1) * 8)) && (doc_len = out_alloc(&out, c.n_docs * 8));
    if (ok) {
        Py_BEGIN_ALLOW_THREADS
        count_pairs(&c, terms, tfs, doc_ptr, doc_len);
        Py_END_ALLOW_THREADS
    }
    Py_ssize_t n_pairs = ok ? doc_ptr[c.n_docs] : 0, sizes[4] = {n_pairs * 4, n_pairs * 4, (c.n_docs + 1) * 8, c.n_docs * 8};
    views_release(&vs);
    return outs_finish(&out, sizes, ok);
}

typedef struct {
    const int32_t *terms, *tfs;
    const int64_t *doc_ptr;
    const float *norm; /* per document: k1 * (1 - b + b * length / average length) */
    const float *idf;  /* per term; NULL when counting */
    const int64_t *indptr;
    int64_t *counts_or_cursor; /* counting: postings per list; scattering: the next free posting of each list */
    int32_t *doc_ids;
    float *weights, *bounds;
    Py_ssize_t n_pairs, n_docs, n_terms, n_norm;
    int64_t first_doc, tf_cap;
    float k1p1, cut;
} Layout;

/* BM25's tf factor, as bm25_build.Saturation computes it in float32 (no fused multiply-add can arise here). */
static inline float saturation(int32_t tf, int64_t tf_cap, float k1p1, float norm) {
    float f = (float)(tf < tf_cap ? tf : tf_cap);
    return f * k1p1 / (f + norm);
}

/* A posting on its way to its list: sorted by term first, so each list is written in runs, not one by one. */
typedef struct {
    uint32_t term;
    int32_t doc;
    float s; /* the tf factor */
} Posting;

/* Each pair as a posting with its doc id and tf factor into out or, if out is NULL, counted into its list
 * (list 2t holds the postings of term t whose tf factor is above the cut, list 2t + 1 the rest).
 * Returns -1 on inconsistent input. */
static int layout_postings(const Layout *L, Posting *out) {
    for (Py_ssize_t d = 0; d < L->n_docs; d++) {
        int64_t lo = L->doc_ptr[d], hi = L->doc_ptr[d + 1];
        if (lo < 0 || hi < lo || hi > L->n_pairs) return -1;
        int32_t doc = (int32_t)(L->first_doc + d);
        float norm = L->norm[doc];
        for (int64_t p = lo; p < hi; p++) {
            int32_t t = L->terms[p];
            if (t < 0 || t >= L->n_terms) return -1;
            float s = saturation(L->tfs[p], L->tf_cap, L->k1p1, norm);
            if (out) out[p] = (Posting){(uint32_t)t, doc, s};
            else L->counts_or_cursor[2 * (int64_t)t + (s <= L->cut)]++;
        }
    }
    return 0;
}

/* Stable LSD radix sort by term, 11 bits a pass; returns whichever buffer holds the result. */
static Posting *sort_by_term(Posting *a, Posting *tmp, Py_ssize_t n, Py_ssize_t n_terms) {
    int bits = 0;
    while (bits < 32 && ((int64_t)1 << bits) < n_terms) bits++;
    for (int shift = 0; shift < bits; shift += 11) {
        Py_ssize_t count[2048] = {0};
        for (Py_ssize_t i = 0; i < n; i++) count[(a[i].term >> shift) & 2047]++;
        Py_ssize_t sum = 0;
        for (int b = 0; b < 2048; b++) { Py_ssize_t c = count[b]; count[b] = sum; sum += c; }
        for (Py_ssize_t i = 0; i < n; i++) tmp[count[(a[i].term >> shift) & 2047]++] = a[i];
        Posting *t = a; a = tmp, tmp = t;
    }
    return a;
}

/* Count the postings of each list (idf == NULL) or write them, sorted by term first so that each list
 * is written in runs rather than one posting at a time. buf: room for 2 * n_pairs postings.
 * Returns 0, or -1 on inconsistent input. */
static int layout_pass(const Layout *L, Posting *buf) {
    if (!L->idf) return layout_postings(L, NULL);
    if (layout_postings(L, buf) < 0) return -1;
    const Posting *sorted = sort_by_term(buf, buf + L->n_pairs, L->n_pairs, L->n_terms);
    for (Py_ssize_t p = 0; p < L->n_pairs; p++) {
        Posting e = sorted[p];
        int64_t l = 2 * (int64_t)e.term + (e.s <= L->cut), q = L->counts_or_cursor[l]++;
        if (q >= L->indptr[l + 1]) return -1;
        float w = e.s * L->idf[e.term];
        L->doc_ids[q] = e.doc;
        L->weights[q] = w;
        if (w > L->bounds[l]) L->bounds[l] = w;
    }
    return 0;
}

/* list_counts(terms, tfs, doc_ptr, first_doc, norm, k1p1, cut, tf_cap, counts) and
 * scatter(terms, tfs, doc_ptr, first_doc, norm, k1p1, cut, tf_cap, cursor, idf, indptr, doc_ids, weights, bounds, scratch) */
static PyObject *layout(PyObject *args, int scatter) {
    PyObject *o[11] = {0};
    Layout L = {0};
    double k1p1, cut;
    if (!PyArg_ParseTuple(args, scatter ? "OOOLOddLOOOOOOO" : "OOOLOddLO", &o[0], &o[1], &o[2], &L.first_doc, &o[3], &k1p1, &cut,
                          &L.tf_cap, &o[4], &o[5], &o[6], &o[7], &o[8], &o[9], &o[10]))
        return NULL;
    L.k1p1 = (float)k1p1, L.cut = (float)cut;
    Views vs = {.n = 0};
    Py_ssize_t n_ptr, n_lists;
    Posting *buf = NULL;
    PyObject *result = NULL;
    if (!(L.terms = view(&vs, o[0], 0, 4, 0, "terms", &L.n_pairs)) || !(L.tfs = view(&vs, o[1], 0, 4, L.n_pairs, "tfs", NULL)) ||
        !(L.doc_ptr = view(&vs, o[2], 0, 8, 1, "doc_ptr", &n_ptr)) || !(L.norm = view(&vs, o[3], 0, 4, 0, "norm", &L.n_norm)) ||
        !(L.counts_or_cursor = view(&vs, o[4], 1, 8, 0, scatter ? "cursor" : "counts", &n_lists)))
        goto done;
    L.n_docs = n_ptr - 1, L.n_terms = n_lists / 2;
    if (scatter && (!(L.idf = view(&vs, o[5], 0, 4, L.n_terms, "idf", NULL)) ||
                    !(L.indptr = view(&vs, o[6], 0, 8, n_lists + 1, "indptr", NULL)) ||
                    !(L.doc_ids = view(&vs, o[7], 1, 4, L.indptr[n_lists], "doc_ids", NULL)) ||
                    !(L.weights = view(&vs, o[8], 1, 4, L.indptr[n_lists], "weights", NULL)) ||
                    !(L.bounds = view(&vs, o[9], 1, 4, n_lists, "bounds", NULL)) ||
                    !(buf = view(&vs, o[10], 1, 1, 2 * L.n_pairs * sizeof *buf, "scratch", NULL))))
        goto done;
    if (L.first_doc < 0 || L.first_doc + L.n_docs > L.n_norm) {
        PyErr_Format(PyExc_ValueError, "expected documents within norm's %zd, actual up to %lld", L.n_norm,
                     (long long)(L.first_doc + L.n_docs));
        goto done;
    }
    int status;
    Py_BEGIN_ALLOW_THREADS
    status = layout_pass(&L, buf);
    Py_END_ALLOW_THREADS
    if (status) PyErr_SetString(PyExc_ValueError, "inconsistent postings: doc_ptr, a term id or the list counts disagree");
    else result = Py_NewRef(Py_None);
done:
    views_release(&vs);
    return result;
}

static PyObject *py_list_counts(PyObject *self, PyObject *args) { (void)self; return layout(args, 0); }
static PyObject *py_scatter(PyObject *self, PyObject *args) { (void)self; return layout(args, 1); }

/* ------------------------------------------------------------------------------------------------
 * Query: exact top-k by MaxScore over windows of documents.
 *
 * The query's lists are ordered by decreasing weight bound; rest[j] is the sum of the bounds of lists
 * j and after. Given a floor on the k-th best score, the lists from `ess` on, whose bounds add up to
 * less than the floor, are non-essential: a document that none of the essential lists holds cannot
 * enter the top k. The floor starts as the k-th best score of a few documents of the highest-bound
 * (rarest) lists, which rank high most often, and rises with the k-th best score found.
 *
 * Windows of WINDOW documents are taken in increasing order, each starting at the next essential
 * posting. The essential lists' postings in the window are added into an accumulator small enough
 * to stay in L1 cache; their documents are the candidates. The next lists are merged by a masked
 * scan of their postings in the window while that costs less than looking each candidate up, and the
 * candidates that can no longer reach the floor are dropped; each one left is then looked up in the
 * remaining lists, in order, until it cannot reach the floor, and offered to the top k. A long list
 * has a bitmap of its documents with the rank of each 64-bit word, so a lookup there is a bit test;
 * a short one is searched with a galloping cursor (candidates come in increasing id).
 *
 * Every document's weights are summed in list order, so its score does not depend on when it was
 * scored; documents are offered in increasing id, so a later one enters only with a strictly higher
 * score (ties go to the lower id).
 * ------------------------------------------------------------------------------------------------ */

#define SLACK 1e-5 /* relative: float32 sums in another order differ by a few ulps; never prune a tie */
#define WINDOW_BITS 12
#define WINDOW (1 << WINDOW_BITS) /* 16 KiB of float32: stays in L1 */
#define SEED_DOCS 16              /* documents scored for the first floor (at least 2k) */
#define GALLOP_COST 40            /* a galloping lookup costs about as much as scanning this many postings */

typedef struct {
    int64_t lo, pos, hi; /* the list's postings, and the next one for the windows or the cursor */
    double bound;
    double density;           /* postings per document */
    float mult;               /* how many times the query holds the term */
    const uint64_t *bitmap;   /* long lists: bit d says doc d is in the list; else NULL */
    const int32_t *ranks;     /* ... and the postings before each 64-bit word */
} List;

typedef struct {
    float score;
    int32_t doc;
} Entry;

/* a ranks below b: lower score, or the same score and a higher doc id */
static inline int worse(Entry a, Entry b) { return a.score < b.score || (a.score == b.score && a.doc > b.doc); }

static void sift_down(Entry *h, Py_ssize_t n, Py_ssize_t i) {
    for (;;) {
        Py_ssize_t w = i, l = 2 * i + 1, r = l + 1;
        if (l < n && worse(h[l], h[w])) w = l;
        if (r < n && worse(h[r], h[w])) w = r;
        if (w == i) return;
        Entry t = h[i]; h[i] = h[w]; h[w] = t;
        i = w;
    }
}

static void sift_up(Entry *h, Py_ssize_t i) {
    while (i > 0) {
        Py_ssize_t parent = (i - 1) / 2;
        if (!worse(h[i], h[parent])) return;
        Entry t = h[i]; h[i] = h[parent]; h[parent] = t;
        i = parent;
    }
}

/* The first position from p on whose doc is >= d: gallop, then binary search. */
static inline int64_t advance(const int32_t *docs, int64_t p, int64_t hi, int64_t d) {
    if (p >= hi || docs[p] >= d) return p;
    int64_t step = 1, lo = p; /* docs[lo] < d */
    while (lo + step < hi && docs[lo + step] < d) { lo += step; step <<= 1; }
    int64_t top = lo + step < hi ? lo + step : hi; /* the answer lies in (lo, top] */
    lo++;
    while (lo < top) { int64_t m = lo + (top - lo) / 2; if (docs[m] < d) lo = m + 1; else top = m; }
    return lo;
}

static inline int popcount64(uint64_t x) { /* portable: no popcnt instruction without -mpopcnt */
    x -= (x >> 1) & 0x5555555555555555ULL;
    x = (x & 0x3333333333333333ULL) + ((x >> 2) & 0x3333333333333333ULL);
    x = (x + (x >> 4)) & 0x0F0F0F0F0F0F0F0FULL;
    return (int)((x * 0x0101010101010101ULL) >> 56);
}

typedef struct {
    const int32_t *docs;
    const float *weights;
    List *lists;
    const double *rest; /* (n_lists + 1,) */
    int n_lists;
    int64_t n_docs;
    Py_ssize_t k, n; /* wanted, and held in heap */
    Entry *heap;     /* a min-heap by `worse`: heap[0] is the k-th best so far */
    double floor;    /* scores below it cannot enter the top k (-inf until known) */
} Query;

/* The weight of doc in list L (0 if absent); a short list's cursor moves up to doc. */
static inline float lookup(const Query *q, List *L, int32_t doc) {
    if (L->bitmap) {
        if ((uint64_t)(int64_t)doc >= (uint64_t)q->n_docs) return 0.0f; /* a damaged list: never read past the bitmap */
        uint64_t word = L->bitmap[doc >> 6], below = (1ULL << (doc & 63)) - 1;
        if (!(word >> (doc & 63) & 1)) return 0.0f;
        int64_t p = L->lo + L->ranks[doc >> 6] + popcount64(word & below);
        return p < L->hi ? q->weights[p] * L->mult : 0.0f; /* else a damaged bitmap: never read past the list */
    }
    int64_t p = L->pos = advance(q->docs, L->pos, L->hi, doc);
    return p < L->hi && q->docs[p] == doc ? q->weights[p] * L->mult : 0.0f;
}

/* The smallest float >= x: a float partial score reaches x exactly when it reaches this. */
static inline float float_at_least(double x) {
    float f = (float)x;
    return (double)f < x ? nextafterf(f, INFINITY) : f;
}

/* Offer a scored document to the top k (documents arrive in increasing id). */
static void offer(Query *q, float score, int32_t doc) {
    Entry e = {score, doc};
    if (q->n < q->k) {
        q->heap[q->n] = e;
        sift_up(q->heap, q->n++);
    } else if (score > q->heap[0].score) {
        q->heap[0] = e;
        sift_down(q->heap, q->k, 0);
    } else {
        return;
    }
    if (q->n == q->k && q->heap[0].score * (1 - SLACK) > q->floor) q->floor = q->heap[0].score * (1 - SLACK);
}

/* Complete the partial score s of doc (lists before `from` summed) from the lists `from` on, as long as it
 * can still reach the floor, and offer it. */
static void complete(Query *q, int from, int32_t doc, float s) {
    for (int i = from; i < q->n_lists; i++) {
        if (s + q->rest[i] < q->floor) return;
        s += lookup(q, &q->lists[i], doc);
    }
    offer(q, s, doc);
}

/* A first floor: the k-th best score of the first SEED_DOCS (at least 2k) documents of the highest-bound
 * lists. Any documents give a lower bound on the k-th best score; these give a good one. The short
 * lists' cursors go back to their start. */
static void seed_floor(Query *q, int32_t *seeds, Py_ssize_t n_seeds) {
    Py_ssize_t n = 0;
    for (int j = 0; j < q->n_lists && n < n_seeds; j++)
        for (int64_t p = q->lists[j].lo; p < q->lists[j].hi && n < n_seeds; p++) seeds[n++] = q->docs[p];
    for (Py_ssize_t i = 1; i < n; i++) { /* insertion sort, few docs */
        int32_t d = seeds[i];
        Py_ssize_t at = i;
        while (at > 0 && seeds[at - 1] > d) { seeds[at] = seeds[at - 1]; at--; }
        seeds[at] = d;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        if (i > 0 && seeds[i] == seeds[i - 1]) continue;
        float s = 0.0f;
        for (int j = 0; j < q->n_lists; j++) s += lookup(q, &q->lists[j], seeds[i]);
        offer(q, s, seeds[i]); /* only for the k-th best score */
    }
    q->floor = q->n == q->k ? q->heap[0].score * (1 - SLACK) : -INFINITY;
    q->n = 0; /* the windows find these documents again, in order */
    for (int j = 0; j < q->n_lists; j++) q->lists[j].pos = q->lists[j].lo;
}

/* Add list L's weights of the window's candidates (the set bits) to acc: a masked scan of its postings in
 * the window, branch-free. */
static void merge_list(const Query *q, List *L, int32_t base, float *acc, const uint64_t *bits) {
    int64_t p = advance(q->docs, L->pos, L->hi, base);
    for (; p < L->hi; p++) {
        uint32_t off = (uint32_t)((int64_t)q->docs[p] - base);
        if (off >= WINDOW) break; /* the window's end (or a damaged list: never a write out of acc) */
        acc[off] += (bits[off >> 6] >> (off & 63) & 1) ? q->weights[p] * L->mult : 0.0f;
    }
    L->pos = p;
}

/* Keep the candidates whose partial score reaches need, in increasing order, in offs and partial (if not
 * NULL; else in acc and bits); returns how many. Branch-free: whether one stays is a coin toss to the predictor. */
static int64_t prune(float *acc, uint64_t *bits, uint64_t *summary, float need, int32_t *offs, float *partial) {
    int64_t n = 0;
    uint64_t kept = 0;
    for (uint64_t words = *summary; words; words &= words - 1) {
        int w = __builtin_ctzll(words);
        uint64_t word = bits[w];
        for (uint64_t todo = word; todo; todo &= todo - 1) {
            int b = __builtin_ctzll(todo);
            float a = acc[w * 64 + b];
            uint64_t stays = a >= need;
            if (offs) offs[n] = w * 64 + b, partial[n] = a, acc[w * 64 + b] = 0.0f;
            else acc[w * 64 + b] = stays ? a : 0.0f, word &= ~((1 - stays) << b);
            n += (int64_t)stays;
        }
        bits[w] = offs ? 0 : word;
        kept |= (uint64_t)(word != 0) << w;
    }
    *summary = offs ? 0 : kept;
    return n;
}

/* Score one window [base, base + WINDOW): add the essential lists (0 to ess); merge the next short lists
 * into their documents by scanning while that costs less than looking the documents up, dropping those
 * that can no longer reach the floor; complete the others one by one. offs, partial: room for WINDOW. */
static void score_window(Query *q, int ess, int32_t base, float *acc, uint64_t *bits, int32_t *offs, float *partial) {
    uint64_t summary = 0;     /* bit w: bits[w] is not zero */
    int64_t n_candidates = 0; /* an upper bound until the first prune */
    for (int j = 0; j < ess; j++) {
        List *L = &q->lists[j];
        int64_t p = L->pos;
        for (; p < L->hi; p++) {
            uint32_t off = (uint32_t)((int64_t)q->docs[p] - base);
            if (off >= WINDOW) break; /* the window's end (or a damaged list: never a write out of acc) */
            acc[off] += q->weights[p] * L->mult;
            bits[off >> 6] |= 1ULL << (off & 63);
            summary |= 1ULL << (off >> 6);
        }
        n_candidates += p - L->pos;
        L->pos = p;
    }
    int from = ess;
    for (; from < q->n_lists && n_candidates && !q->lists[from].bitmap &&
           q->lists[from].density * WINDOW < GALLOP_COST * n_candidates; from++) {
        if (from > ess) n_candidates = prune(acc, bits, &summary, float_at_least(q->floor - q->rest[from]), NULL, NULL);
        if (n_candidates) merge_list(q, &q->lists[from], base, acc, bits);
    }
    int64_t n = prune(acc, bits, &summary, float_at_least(q->floor - q->rest[from]), offs, partial);
    for (int64_t i = 0; i < n; i++) complete(q, from, base + offs[i], partial[i]);
}

/* Returns the number of results, best first in out_docs and out_scores; -1 if a list starts or ends out of
 * range (a cheap check for a damaged index; memory stays safe either way). seeds: room for n_seeds. */
static Py_ssize_t top_k(Query *q, int32_t *seeds, Py_ssize_t n_seeds, int32_t *out_docs, float *out_scores) {
    float acc[WINDOW] = {0}, partial[WINDOW];
    uint64_t bits[WINDOW / 64] = {0}; /* the window's candidates */
    int32_t offs[WINDOW];
    for (int j = 0; j < q->n_lists; j++) {
        const List *L = &q->lists[j];
        uint64_t first = (uint64_t)(int64_t)q->docs[L->lo], last = (uint64_t)(int64_t)q->docs[L->hi - 1];
        if (first >= (uint64_t)q->n_docs || last >= (uint64_t)q->n_docs) return -1;
    }
    seed_floor(q, seeds, n_seeds);
    int ess = q->n_lists;
    for (;;) {
        while (ess > 0 && q->rest[ess - 1] < q->floor) ess--;
        int32_t base = INT32_MAX;
        for (int j = 0; j < ess; j++)
            if (q->lists[j].pos < q->lists[j].hi && q->docs[q->lists[j].pos] < base) base = q->docs[q->lists[j].pos];
        if (base == INT32_MAX) break; /* no essential postings left */
        score_window(q, ess, base, acc, bits, offs, partial);
    }
    Py_ssize_t n = q->n;
    for (Py_ssize_t m = n; m-- > 0;) { /* pop the worst into the last free slot: best first */
        out_docs[m] = q->heap[0].doc;
        out_scores[m] = q->heap[0].score;
        q->heap[0] = q->heap[m];
        sift_down(q->heap, m, 0);
    }
    return n;
}

static int cmp_long(const void *a, const void *b) {
    long x = *(const long *)a, y = *(const long *)b;
    return (x > y) - (x < y);
}

/* The bitmaps of the index: the lists that have one (ascending), their bitmaps and ranks, words per list. */
typedef struct {
    const int64_t *lists;
    const uint64_t *bitmaps;
    const int32_t *ranks;
    Py_ssize_t n, words;
} Bitmaps;

/* Point L at its bitmap if the list has one. */
static void find_bitmap(const Bitmaps *bm, int64_t l, List *L) {
    Py_ssize_t lo = 0, hi = bm->n;
    while (lo < hi) { Py_ssize_t m = lo + (hi - lo) / 2; if (bm->lists[m] < l) lo = m + 1; else hi = m; }
    if (lo < bm->n && bm->lists[lo] == l) L->bitmap = bm->bitmaps + lo * bm->words, L->ranks = bm->ranks + lo * bm->words;
}

/* The query's lists, by decreasing bound (stable), a repeated term's weights counted again; -1 on a bad id. */
static int query_lists(PyObject *terms, const int64_t *indptr, const float *bounds, Py_ssize_t n_lists_all, Py_ssize_t n_docs,
                       const Bitmaps *bm, List **out) {
    PyObject *seq = PySequence_Fast(terms, "expected term ids as a sequence of ints");
    if (!seq) return -1;
    Py_ssize_t nq = PySequence_Fast_GET_SIZE(seq), nnz = indptr[n_lists_all];
    long *ids = malloc((nq + 1) * sizeof *ids);
    List *lists = *out = malloc((2 * nq + 1) * sizeof *lists);
    int n = -1;
    if (!ids || !lists) { PyErr_NoMemory(); goto done; }
    for (Py_ssize_t i = 0; i < nq; i++) {
        ids[i] = PyLong_AsLong(PySequence_Fast_GET_ITEM(seq, i));
        if (ids[i] == -1 && PyErr_Occurred()) goto done;
        if (ids[i] < 0 || 2 * ids[i] >= n_lists_all) {
            PyErr_Format(PyExc_ValueError, "expected term ids in [0, %zd), actual %ld", n_lists_all / 2, ids[i]);
            goto done;
        }
    }
    qsort(ids, nq, sizeof *ids, cmp_long);
    n = 0;
    for (Py_ssize_t i = 0; i < nq;) {
        Py_ssize_t m = 1;
        while (i + m < nq && ids[i + m] == ids[i]) m++;
        for (long l = 2 * ids[i]; l < 2 * ids[i] + 2; l++) {
            if (indptr[l + 1] <= indptr[l]) continue;
            if (indptr[l] < 0 || indptr[l + 1] > nnz) {
                PyErr_SetString(PyExc_ValueError, "damaged index: indptr out of range; delete the cache and rebuild");
                n = -1;
                goto done;
            }
            double density = (double)(indptr[l + 1] - indptr[l]) / (double)(n_docs > 0 ? n_docs : 1);
            List L = {indptr[l], indptr[l], indptr[l + 1], (double)bounds[l] * (double)m, density, (float)m, NULL, NULL};
            find_bitmap(bm, l, &L);
            int at = n++;
            while (at > 0 && lists[at - 1].bound < L.bound) { lists[at] = lists[at - 1]; at--; }
            lists[at] = L;
        }
        i += m;
    }
done:
    Py_DECREF(seq);
    free(ids);
    return n;
}

static PyObject *py_top_k(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *o[9], *terms;
    Py_ssize_t k, n_docs, n_indptr;
    if (!PyArg_ParseTuple(args, "OOOOOOOnOnOO", &o[0], &o[1], &o[2], &o[3], &o[4], &o[5], &o[6], &n_docs, &terms, &k, &o[7], &o[8]))
        return NULL;
    if (k < 1) return PyErr_Format(PyExc_ValueError, "expected k >= 1, actual %zd", k);
    Views vs = {.n = 0};
    PyObject *result = NULL;
    List *lists = NULL;
    double *rest = NULL;
    Entry *heap = NULL;
    int32_t *seeds = NULL;
    const int64_t *indptr;
    const float *bounds;
    int32_t *out_docs;
    float *out_scores;
    Query q = {.n_docs = n_docs};
    Bitmaps bm = {.words = (n_docs + 63) / 64};
    if (!(indptr = view(&vs, o[0], 0, 8, 1, "indptr", &n_indptr)) ||
        !(q.docs = view(&vs, o[1], 0, 4, indptr[n_indptr - 1], "doc_ids", NULL)) ||
        !(q.weights = view(&vs, o[2], 0, 4, indptr[n_indptr - 1], "weights", NULL)) ||
        !(bounds = view(&vs, o[3], 0, 4, n_indptr - 1, "bounds", NULL)) ||
        !(bm.lists = view(&vs, o[4], 0, 8, 0, "bitmap_lists", &bm.n)) ||
        !(bm.bitmaps = view(&vs, o[5], 0, 8, bm.n * bm.words, "bitmaps", NULL)) ||
        !(bm.ranks = view(&vs, o[6], 0, 4, bm.n * bm.words, "ranks", NULL)) ||
        !(out_docs = view(&vs, o[7], 1, 4, k, "out_docs", NULL)) ||
        !(out_scores = view(&vs, o[8], 1, 4, k, "out_scores", NULL)))
        goto done;
    if ((q.n_lists = query_lists(terms, indptr, bounds, n_indptr - 1, n_docs, &bm, &lists)) < 0) goto done;
    Py_ssize_t n_seeds = 2 * k > SEED_DOCS ? 2 * k : SEED_DOCS;
    rest = malloc((q.n_lists + 1) * sizeof *rest), heap = malloc(k * sizeof *heap), seeds = malloc(n_seeds * sizeof *seeds);
    if (!rest || !heap || !seeds) { PyErr_NoMemory(); goto done; }
    rest[q.n_lists] = 0.0;
    for (int j = q.n_lists; j-- > 0;) rest[j] = rest[j + 1] + lists[j].bound;
    q.lists = lists, q.rest = rest, q.k = k, q.heap = heap, q.floor = -INFINITY;
    Py_ssize_t n;
    Py_BEGIN_ALLOW_THREADS
    n = top_k(&q, seeds, n_seeds, out_docs, out_scores);
    Py_END_ALLOW_THREADS
    if (n < 0) PyErr_SetString(PyExc_ValueError, "damaged index: a doc id is out of range; delete the cache and rebuild");
    else result = PyLong_FromSsize_t(n);
done:
    views_release(&vs);
    free(lists), free(rest), free(heap), free(seeds);
    return result;
}

static PyMethodDef methods[] = {
    {"top_k", py_top_k, METH_VARARGS,
     "top_k(indptr, doc_ids, weights, bounds, bitmap_lists, bitmaps, ranks, n_docs, term_ids, k, out_docs, out_scores) -> n\n\n"
     "Write the n <= k best (doc, score) pairs, best first, ties to the lower doc id."},
    {"split_pieces", py_split_pieces, METH_O,
     "split_pieces(raw) -> (keys, spans, piece_ids, doc_starts) as bytearrays of uint64, int64 pairs, int32, int64\n\n"
     "The pieces (runs of word bytes) of NUL-separated documents ending in 8 zero bytes; see bm25_build.split_pieces."},
    {"probe", py_probe, METH_VARARGS,
     "probe(table, keys) -> (slots,) as a bytearray of int64\n\n"
     "The slot of each key in an open-addressing uint64 table (0: free, size a power of 2), inserting new keys."},
    {"count_terms", py_count_terms, METH_VARARGS,
     "count_terms(codes, piece_ids, doc_starts, multi_terms, multi_start, seen, first_doc)\n"
     "    -> (terms, tfs, doc_ptr, doc_len) as bytearrays of int32, int32, int64, int64\n\n"
     "Each document's (term, tf) pairs. seen: int32 scratch, two per term, -1 at first; pass the chunks in document order."},
    {"list_counts", py_list_counts, METH_VARARGS,
     "list_counts(terms, tfs, doc_ptr, first_doc, norm, k1p1, cut, tf_cap, counts): add a chunk's postings per list to counts."},
    {"scatter", py_scatter, METH_VARARGS,
     "scatter(terms, tfs, doc_ptr, first_doc, norm, k1p1, cut, tf_cap, cursor, idf, indptr, doc_ids, weights, bounds, scratch)\n\n"
     "Write a chunk's postings at cursor (advanced), their weights, and raise bounds to their maxima.\n"
     "scratch: a writable buffer of at least SCATTER_BYTES bytes per pair."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_bm25_kernel", "Compiled BM25 index build and top-k (see bm25.py).", -1,
                                    methods};

PyMODINIT_FUNC PyInit__bm25_kernel(void) {
    for (int c = 0; c < 256; c++)
        WORD[c] = c >= 0x80 || (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
    PyObject *m = PyModule_Create(&module);
    if (m && (PyModule_AddIntConstant(m, "VERSION", KERNEL_VERSION) < 0 ||
              PyModule_AddIntConstant(m, "SCATTER_BYTES", 2 * sizeof(Posting)) < 0))
        Py_CLEAR(m);
    return m;
}
