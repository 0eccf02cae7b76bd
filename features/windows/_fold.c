/* Pane aggregates updated event by event, in one pass over a batch.
 *
 *     fold(slots, values, counts, sums, means, m2s, lows, highs) -> None
 *
 * For each event i in order (slots: int64, values: float64, both of one length), the slot
 * s = slots[i] takes value x = values[i]: counts[s] += 1, then, for each array that is not
 * None (float64, one entry per slot, updated in place):
 *     sums[s] += x
 *     Welford:  d = x - means[s];  means[s] += d / counts[s];  m2s[s] += d * (x - means[s])
 *     lows[s] = x if x < lows[s];  highs[s] = x if x > highs[s]  (ties keep the earlier value)
 * means and m2s go together. These are the per-event engine's float operations in its order
 * (features/windows/aggregates.py), so a window's values do not depend on how the stream was
 * cut into batches; numpy could only do them with ufunc.at or a lockstep over the runs.
 * Compiled with -ffp-contract=off: no fused multiply-add may change a rounding.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

static int is_format(const Py_buffer *view, char kind) {
    const char *f = view->format;
    if (!f) return 0;
    if (*f == '<' || *f == '=' || *f == '@') f++;
    if (kind == 'i') return view->itemsize == 8 && (strcmp(f, "q") == 0 || strcmp(f, "l") == 0);
    return view->itemsize == 8 && strcmp(f, "d") == 0;
}

/* A contiguous array of `kind` ('i': int64, 'd': float64), writable if asked; None gives no view. */
static int get(PyObject *obj, Py_buffer *view, char kind, int writable, const char *name, int *has) {
    *has = 0;
    if (obj == Py_None) return 0;
    int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(obj, view, flags) < 0) return -1;
    *has = 1;
    if (!is_format(view, kind)) {
        PyErr_Format(PyExc_TypeError, "%s must be a contiguous %s array", name, kind == 'i' ? "int64" : "float64");
        return -1;
    }
    return 0;
}

static PyObject *fold(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *objs[8];
    static const char *names[8] = {"slots", "values", "counts", "sums", "means", "m2s", "lows", "highs"};
    static const char kinds[8] = {'i', 'd', 'i', 'd', 'd', 'd', 'd', 'd'};
    if (!PyArg_ParseTuple(args, "OOOOOOOO", &objs[0], &objs[1], &objs[2], &objs[3], &objs[4], &objs[5], &objs[6],
                          &objs[7]))
        return NULL;
    Py_buffer views[8];
    int has[8] = {0};
    PyObject *result = NULL;
    for (int j = 0; j < 8; j++) {
        if (j < 3 && objs[j] == Py_None) {
            PyErr_Format(PyExc_TypeError, "%s must not be None", names[j]);
            goto done;
        }
        if (get(objs[j], &views[j], kinds[j], j >= 2, names[j], &has[j]) < 0) goto done;
    }
    if (has[4] != has[5]) {
        PyErr_SetString(PyExc_ValueError, "means and m2s go together");
        goto done;
    }
    Py_ssize_t n = views[0].len / 8, size = views[2].len / 8;
    if (views[1].len / 8 != n) {
        PyErr_SetString(PyExc_ValueError, "slots and values differ in length");
        goto done;
    }
    for (int j = 3; j < 8; j++)
        if (has[j] && views[j].len / 8 != size) {
            PyErr_Format(PyExc_ValueError, "%s must have one entry per slot, as counts", names[j]);
            goto done;
        }
    const int64_t *slots = views[0].buf;
    for (Py_ssize_t i = 0; i < n; i++)
        if (slots[i] < 0 || slots[i] >= size) {
            PyErr_Format(PyExc_IndexError, "slot %lld is outside the %zd slots", (long long)slots[i], size);
            goto done;
        }
    const double *values = views[1].buf;
    int64_t *counts = views[2].buf;
    double *sums = has[3] ? views[3].buf : NULL, *means = has[4] ? views[4].buf : NULL;
    double *m2s = has[5] ? views[5].buf : NULL, *lows = has[6] ? views[6].buf : NULL;
    double *highs = has[7] ? views[7].buf : NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        int64_t s = slots[i];
        double x = values[i];
        int64_t k = ++counts[s];
        if (sums) sums[s] += x;
        if (means) {
            double d = x - means[s];
            means[s] += d / (double)k;
            m2s[s] += d * (x - means[s]);
        }
        if (lows && x < lows[s]) lows[s] = x;
        if (highs && x > highs[s]) highs[s] = x;
    }
    result = Py_None;
    Py_INCREF(result);
done:
    for (int j = 0; j < 8; j++)
        if (has[j]) PyBuffer_Release(&views[j]);
    return result;
}

static PyMethodDef methods[] = {
    {"fold", fold, METH_VARARGS,
     "fold(slots, values, counts, sums, means, m2s, lows, highs): pane aggregates, event by event "
     "(see features/windows/_fold.c)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "features.windows._fold",
                                    "Pane aggregates updated event by event.", -1, methods,
                                    NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__fold(void) { return PyModule_Create(&module); }
