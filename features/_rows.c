/* Rows of bytes assembled from a template of parts, one pass over many rows.
 *
 * The features flow writes one JSON message per closed window: a fixed frame with per-row
 * pieces (entity, window ends, values, count). Python spent more time joining those pieces
 * (a %-format and an f-string per row) than orjson spent rendering the values. Here the
 * values stay orjson's text, rendered one column at a time, and only the joining is in C:
 *
 *     render(n, parts) -> list of n bytes objects
 *
 * where each part is one of
 *     bytes                 the same text in every row
 *     (TOKENS, bytes)       a JSON array (orjson's compact output) of n elements: row i gets element i
 *     (INNER, bytes)        a JSON array of n strings: row i gets string i without its quotes
 *     (INT, int64 buffer)   n integers, in decimal
 *     (ISO, int64 buffer)   n epoch milliseconds, as "YYYY-MM-DDTHH:MM:SS.mmmZ" (years 1000..9999;
 *                           OverflowError outside them, where Python's strftime pads differently)
 *     (RAW, list of bytes)  row i gets item i
 *
 * A part that does not fit (wrong type, wrong count, a malformed array) raises ValueError or
 * TypeError: the caller's texts are its own, so any mismatch is a bug to surface, not to skip.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

enum { CONST = -1, TOKENS = 0, INNER = 1, INT = 2, ISO = 3, RAW = 4 };
#define ISO_LEN 24

typedef struct {
    int kind;
    const char *text;   /* CONST: the text; TOKENS/INNER: the array text */
    Py_ssize_t len;     /* CONST: its length */
    Py_ssize_t *starts; /* TOKENS/INNER: each element's offset and length in the array text */
    Py_ssize_t *lens;
    const int64_t *ints; /* INT/ISO */
    Py_buffer view;
    int has_view;
    PyObject *items;    /* RAW: the list */
} Part;

/* The top-level elements of a compact JSON array: offsets and lengths, exactly n of them. */
static int split_array(const char *s, Py_ssize_t len, Py_ssize_t n, Py_ssize_t *starts, Py_ssize_t *lens) {
    if (len < 2 || s[0] != '[' || s[len - 1] != ']') {
        PyErr_SetString(PyExc_ValueError, "a TOKENS part must be a JSON array");
        return -1;
    }
    Py_ssize_t p = 1, end = len - 1, count = 0;
    if (p == end) {
        if (n != 0) goto wrong_count;
        return 0;
    }
    while (p <= end) {
        Py_ssize_t start = p;
        int depth = 0, in_string = 0;
        for (; p < end; p++) {
            char c = s[p];
            if (in_string) {
                if (c == '\\') p++;
                else if (c == '"') in_string = 0;
            } else if (c == '"') in_string = 1;
            else if (c == '[' || c == '{') depth++;
            else if (c == ']' || c == '}') depth--;
            else if (c == ',' && depth == 0) break;
        }
        if (count == n) goto wrong_count;
        starts[count] = start;
        lens[count] = p - start;
        count++;
        p++; /* past the comma (or the closing bracket: the loop ends) */
    }
    if (count != n) goto wrong_count;
    return 0;
wrong_count:
    PyErr_Format(PyExc_ValueError, "a TOKENS part must have %zd elements", n);
    return -1;
}

static Py_ssize_t int_len(int64_t v) {
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    Py_ssize_t digits = 1;
    while (u >= 10) { u /= 10; digits++; }
    return digits + (v < 0);
}

static char *write_int(char *out, int64_t v) {
    char tmp[24];
    int i = 0;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do { tmp[i++] = (char)('0' + u % 10); u /= 10; } while (u);
    if (v < 0) *out++ = '-';
    while (i) *out++ = tmp[--i];
    return out;
}

/* Milliseconds 1000-01-01 .. 9999-12-31 (the years strftime writes with 4 digits). */
#define ISO_MIN_MS (-30610224000000LL)
#define ISO_MAX_MS (253402300799999LL)

static int check_iso(int64_t ms) {
    if (ms < ISO_MIN_MS || ms > ISO_MAX_MS) {
        PyErr_Format(PyExc_OverflowError, "%lld ms is outside the years 1000..9999", (long long)ms);
        return -1;
    }
    return 0;
}

static void put2(char *out, int v) { out[0] = (char)('0' + v / 10); out[1] = (char)('0' + v % 10); }

static char *write_iso(char *out, int64_t ms) {
    /* Floor division, as Python's // and %: -1 ms is 23:59:59.999 of the day before. */
    int64_t seconds = ms >= 0 ? ms / 1000 : -((-ms + 999) / 1000);
    int millis = (int)(ms - seconds * 1000);
    int64_t days = seconds >= 0 ? seconds / 86400 : -((-seconds + 86399) / 86400);
    int second_of_day = (int)(seconds - days * 86400);
    /* Civil date from days since 1970-01-01 (Howard Hinnant's days_from_civil, inverted). */
    int64_t z = days + 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    int day = (int)(doy - (153 * mp + 2) / 5 + 1);
    int month = (int)(mp < 10 ? mp + 3 : mp - 9);
    int year = (int)(yoe + era * 400 + (month <= 2));
    put2(out, year / 100); put2(out + 2, year % 100); out[4] = '-';
    put2(out + 5, month); out[7] = '-';
    put2(out + 8, day); out[10] = 'T';
    put2(out + 11, second_of_day / 3600); out[13] = ':';
    put2(out + 14, second_of_day / 60 % 60); out[16] = ':';
    put2(out + 17, second_of_day % 60); out[19] = '.';
    out[20] = (char)('0' + millis / 100); put2(out + 21, millis % 100); out[23] = 'Z';
    return out + ISO_LEN;
}

static void release(Part *parts, Py_ssize_t count) {
    for (Py_ssize_t j = 0; j < count; j++) {
        PyMem_Free(parts[j].starts);
        PyMem_Free(parts[j].lens);
        if (parts[j].has_view) PyBuffer_Release(&parts[j].view);
    }
    PyMem_Free(parts);
}

static int prepare(Part *part, PyObject *spec, Py_ssize_t n) {
    if (PyBytes_Check(spec)) {
        part->kind = CONST;
        part->text = PyBytes_AS_STRING(spec);
        part->len = PyBytes_GET_SIZE(spec);
        return 0;
    }
    if (!PyTuple_Check(spec) || PyTuple_GET_SIZE(spec) != 2) {
        PyErr_SetString(PyExc_TypeError, "a part is bytes or a (kind, data) tuple");
        return -1;
    }
    long kind = PyLong_AsLong(PyTuple_GET_ITEM(spec, 0));
    if (kind == -1 && PyErr_Occurred()) return -1;
    PyObject *data = PyTuple_GET_ITEM(spec, 1);
    part->kind = (int)kind;
    switch (kind) {
    case TOKENS:
    case INNER: {
        if (!PyBytes_Check(data)) {
            PyErr_SetString(PyExc_TypeError, "a TOKENS or INNER part's data is bytes (a JSON array)");
            return -1;
        }
        part->text = PyBytes_AS_STRING(data);
        part->starts = PyMem_Malloc(sizeof(Py_ssize_t) * (size_t)(n ? n : 1));
        part->lens = PyMem_Malloc(sizeof(Py_ssize_t) * (size_t)(n ? n : 1));
        if (!part->starts || !part->lens) { PyErr_NoMemory(); return -1; }
        if (split_array(part->text, PyBytes_GET_SIZE(data), n, part->starts, part->lens) < 0) return -1;
        if (kind == INNER) {
            for (Py_ssize_t i = 0; i < n; i++) {
                const char *t = part->text + part->starts[i];
                if (part->lens[i] < 2 || t[0] != '"' || t[part->lens[i] - 1] != '"') {
                    PyErr_SetString(PyExc_ValueError, "an INNER part's elements are JSON strings");
                    return -1;
                }
                part->starts[i] += 1;
                part->lens[i] -= 2;
            }
        }
        return 0;
    }
    case INT:
    case ISO: {
        if (PyObject_GetBuffer(data, &part->view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) return -1;
        part->has_view = 1;
        const char *f = part->view.format;
        if (part->view.itemsize != 8 || !f || !(strcmp(f, "q") == 0 || strcmp(f, "l") == 0 || strcmp(f, "<q") == 0
                                                 || strcmp(f, "<l") == 0 || strcmp(f, "=q") == 0)) {
            PyErr_SetString(PyExc_TypeError, "an INT or ISO part's data is a contiguous int64 array");
            return -1;
        }
        if (part->view.len / 8 != n) {
            PyErr_Format(PyExc_ValueError, "an INT or ISO part must have %zd elements", n);
            return -1;
        }
        part->ints = (const int64_t *)part->view.buf;
        if (kind == ISO)
            for (Py_ssize_t i = 0; i < n; i++)
                if (check_iso(part->ints[i]) < 0) return -1;
        return 0;
    }
    case RAW:
        if (!PyList_Check(data) || PyList_GET_SIZE(data) != n) {
            PyErr_Format(PyExc_ValueError, "a RAW part's data is a list of %zd bytes", n);
            return -1;
        }
        for (Py_ssize_t i = 0; i < n; i++)
            if (!PyBytes_Check(PyList_GET_ITEM(data, i))) {
                PyErr_SetString(PyExc_TypeError, "a RAW part's items are bytes");
                return -1;
            }
        part->items = data;
        return 0;
    default:
        PyErr_Format(PyExc_ValueError, "unknown part kind %ld", kind);
        return -1;
    }
}

static Py_ssize_t part_len(const Part *p, Py_ssize_t i) {
    switch (p->kind) {
    case CONST: return p->len;
    case TOKENS:
    case INNER: return p->lens[i];
    case INT: return int_len(p->ints[i]);
    case ISO: return ISO_LEN;
    default: return PyBytes_GET_SIZE(PyList_GET_ITEM(p->items, i));
    }
}

static char *write_part(char *out, const Part *p, Py_ssize_t i) {
    switch (p->kind) {
    case CONST: memcpy(out, p->text, (size_t)p->len); return out + p->len;
    case TOKENS:
    case INNER: memcpy(out, p->text + p->starts[i], (size_t)p->lens[i]); return out + p->lens[i];
    case INT: return write_int(out, p->ints[i]);
    case ISO: return write_iso(out, p->ints[i]);
    default: {
        PyObject *b = PyList_GET_ITEM(p->items, i);
        Py_ssize_t len = PyBytes_GET_SIZE(b);
        memcpy(out, PyBytes_AS_STRING(b), (size_t)len);
        return out + len;
    }
    }
}

static PyObject *render(PyObject *self, PyObject *args) {
    Py_ssize_t n;
    PyObject *specs;
    if (!PyArg_ParseTuple(args, "nO!", &n, &PyList_Type, &specs)) return NULL;
    if (n < 0) {
        PyErr_SetString(PyExc_ValueError, "n must not be negative");
        return NULL;
    }
    Py_ssize_t count = PyList_GET_SIZE(specs);
    Part *parts = PyMem_Calloc((size_t)(count ? count : 1), sizeof(Part));
    if (!parts) return PyErr_NoMemory();
    for (Py_ssize_t j = 0; j < count; j++)
        if (prepare(&parts[j], PyList_GET_ITEM(specs, j), n) < 0) {
            release(parts, j + 1);
            return NULL;
        }
    PyObject *rows = PyList_New(n);
    if (!rows) { release(parts, count); return NULL; }
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_ssize_t len = 0;
        for (Py_ssize_t j = 0; j < count; j++) len += part_len(&parts[j], i);
        PyObject *row = PyBytes_FromStringAndSize(NULL, len);
        if (!row) { Py_DECREF(rows); release(parts, count); return NULL; }
        char *out = PyBytes_AS_STRING(row);
        for (Py_ssize_t j = 0; j < count; j++) out = write_part(out, &parts[j], i);
        PyList_SET_ITEM(rows, i, row);
    }
    release(parts, count);
    return rows;
}

static PyMethodDef methods[] = {
    {"render", render, METH_VARARGS,
     "render(n, parts) -> list of n bytes: each row the concatenation of its parts (see features/_rows.c)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "features._rows",
                                    "Rows of bytes from a template of parts (the features flow's output).", -1, methods};

PyMODINIT_FUNC PyInit__rows(void) {
    PyObject *m = PyModule_Create(&module);
    if (!m) return NULL;
    if (PyModule_AddIntConstant(m, "TOKENS", TOKENS) < 0 || PyModule_AddIntConstant(m, "INNER", INNER) < 0
        || PyModule_AddIntConstant(m, "INT", INT) < 0 || PyModule_AddIntConstant(m, "ISO", ISO) < 0
        || PyModule_AddIntConstant(m, "RAW", RAW) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
