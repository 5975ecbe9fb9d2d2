/* The linear classifier's hashed text features in one pass (serve/router/classify/linear.py:text_features).
 *
 * An optional speed-up: setup.py builds it when a C compiler is there (optional=True), and linear.py falls
 * back to the numpy computation without it. Both give the same sorted, distinct bucket ids for every text
 * (tests/unit/test_classify_speed.py checks it on every route-eval text):
 *
 *   character n-grams, n = 1..4, over the code points of the normalised text: h_1[i] = c[i],
 *   h_n[i] = h_{n-1}[i] * PRIME + c[i + n - 1] (mod 2^64), bucket = ((h_n[i] ^ SALT[n]) * MIX) >> (64 - BITS);
 *   words and bigrams: the caller's crc32 values, bigrams xor BIGRAM, then a constant token, each | WORD_FLAG,
 *   bucket = (v * MIX) >> (64 - BITS).
 *
 * The distinct buckets come out in increasing order from a bit map of the 2^BITS buckets (no sort).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define BITS 17
#define NBUCKETS (1u << BITS)
#define NWORDS (NBUCKETS / 64)
#define NGRAM_MAX 4

static const uint64_t PRIME = 1000003ULL;
static const uint64_t MIX = 0x9E3779B97F4A7C15ULL;
static const uint64_t SALT_BASE = 0xA24BAED4963EE407ULL;
static const uint64_t WORD_FLAG = 1ULL << 40;
static const uint64_t BIGRAM = 0x5BD1E995ULL;
static const uint64_t CONST_TOKEN = 0x2545F491ULL;

static uint64_t bitmap[NWORDS]; /* all zero between calls (the GIL is held throughout) */

static inline void mark(uint64_t v, Py_ssize_t *lo, Py_ssize_t *hi) {
    uint64_t id = (v * MIX) >> (64 - BITS);
    Py_ssize_t w = (Py_ssize_t)(id >> 6);
    bitmap[w] |= 1ULL << (id & 63);
    if (w < *lo) *lo = w;
    if (w > *hi) *hi = w;
}

/* ngram_ids(norm: str, hashes: list[int], n_words: int) -> bytes
 *
 * norm: the normalised text (" " + words joined by single spaces + " ");
 * hashes: crc32 of each word, then of each bigram (entries from n_words on are bigrams).
 * Returns the distinct bucket ids as little-endian int64, increasing.
 */
static PyObject *ngram_ids(PyObject *self, PyObject *args) {
    PyObject *text, *hashes;
    Py_ssize_t n_words;
    if (!PyArg_ParseTuple(args, "UO!n", &text, &PyList_Type, &hashes, &n_words)) return NULL;
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    Py_ssize_t lo = NWORDS, hi = -1;
    /* h_k over c[s..s+k-1] is c[s] * PRIME^(k-1) + ... + c[s+k-1]: for the n-grams ending at i, each longer
     * one adds the next code point to the left times the next power of PRIME. */
    uint64_t salt[NGRAM_MAX + 1], power[NGRAM_MAX];
    power[0] = 1;
    for (int k = 1; k <= NGRAM_MAX; k++) salt[k] = SALT_BASE * (uint64_t)k;
    for (int k = 1; k < NGRAM_MAX; k++) power[k] = power[k - 1] * PRIME;
    for (Py_ssize_t i = 0; i < n; i++) {
        uint64_t h = 0;
        int kmax = (int)(i + 1 < NGRAM_MAX ? i + 1 : NGRAM_MAX);
        for (int k = 1; k <= kmax; k++) {
            h += (uint64_t)PyUnicode_READ(kind, data, i - k + 1) * power[k - 1];
            mark(h ^ salt[k], &lo, &hi);
        }
    }
    Py_ssize_t total = PyList_GET_SIZE(hashes);
    for (Py_ssize_t j = 0; j < total; j++) {
        uint64_t v = (uint64_t)PyLong_AsUnsignedLongLongMask(PyList_GET_ITEM(hashes, j));
        if (v == (uint64_t)-1 && PyErr_Occurred()) {
            memset(bitmap + (lo < NWORDS ? lo : 0), 0, (size_t)(hi >= lo ? hi - lo + 1 : 0) * sizeof(uint64_t));
            return NULL;
        }
        if (j >= n_words) v ^= BIGRAM;
        mark(v | WORD_FLAG, &lo, &hi);
    }
    mark(CONST_TOKEN | WORD_FLAG, &lo, &hi);
    Py_ssize_t count = 0;
    for (Py_ssize_t w = lo; w <= hi; w++) count += __builtin_popcountll(bitmap[w]);
    PyObject *out = PyBytes_FromStringAndSize(NULL, count * (Py_ssize_t)sizeof(int64_t));
    if (out == NULL) {
        memset(bitmap + lo, 0, (size_t)(hi - lo + 1) * sizeof(uint64_t));
        return NULL;
    }
    int64_t *ids = (int64_t *)PyBytes_AS_STRING(out);
    Py_ssize_t at = 0;
    for (Py_ssize_t w = lo; w <= hi; w++) {
        uint64_t bits = bitmap[w];
        bitmap[w] = 0;
        while (bits) {
            int b = __builtin_ctzll(bits);
            ids[at++] = (int64_t)((w << 6) + b);
            bits &= bits - 1;
        }
    }
    return out;
}

static PyMethodDef methods[] = {
    {"ngram_ids", ngram_ids, METH_VARARGS, "Distinct hashed bucket ids of a normalised text (int64 bytes)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_native", NULL, -1, methods};

PyMODINIT_FUNC PyInit__native(void) { return PyModule_Create(&module); }
