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
 *
 * `merge`, below, does the same for windows made of several panes.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <math.h>
#include <string.h>

static int is_format(const Py_buffer *view, char kind) {
    const char *f = view->format;
    if (!f) return 0;
    if (*f == '<' || *f == '=' || *f == '@') f++;
    if (kind == '?') return view->itemsize == 1 && strcmp(f, "?") == 0;
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
        PyErr_Format(PyExc_TypeError, "%s must be a contiguous %s array", name,
                     kind == 'i' ? "int64" : kind == '?' ? "bool" : "float64");
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

/* merge(slots, valid, counts, sums, means, m2s, lows, highs, n_out, sum_out, m2_out, lo_out, hi_out)
 *
 * Windows from their panes: slots (int64) and valid (bool) are (windows, panes) arrays in time
 * order, flattened; each window's valid panes are merged in that order, as the per-event engine
 * merges them (features/windows/panes.py, `_Group.window`, holds the same steps in numpy):
 * counts and sums added, Welford's moments by Chan et al.'s pairwise update, min and max.
 * The outputs (one entry per window) are written; an input or output that is None is skipped.
 */
static PyObject *merge(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *objs[13];
    static const char *names[13] = {"slots", "valid", "counts", "sums", "means", "m2s", "lows", "highs",
                                    "n_out", "sum_out", "m2_out", "lo_out", "hi_out"};
    static const char kinds[13] = {'i', '?', 'i', 'd', 'd', 'd', 'd', 'd', 'i', 'd', 'd', 'd', 'd'};
    if (!PyArg_ParseTuple(args, "OOOOOOOOOOOOO", &objs[0], &objs[1], &objs[2], &objs[3], &objs[4], &objs[5],
                          &objs[6], &objs[7], &objs[8], &objs[9], &objs[10], &objs[11], &objs[12]))
        return NULL;
    Py_buffer views[13];
    int has[13] = {0};
    PyObject *result = NULL;
    for (int j = 0; j < 13; j++) {
        if ((j < 3 || j == 8) && objs[j] == Py_None) {
            PyErr_Format(PyExc_TypeError, "%s must not be None", names[j]);
            goto done;
        }
        if (get(objs[j], &views[j], kinds[j], j >= 8, names[j], &has[j]) < 0) goto done;
    }
    if (has[4] != has[5] || has[5] != has[10] || has[3] != has[9] || has[6] != has[11] || has[7] != has[12]) {
        PyErr_SetString(PyExc_ValueError, "each aggregate needs its input and its output (means, m2s and m2_out together)");
        goto done;
    }
    Py_ssize_t cells = views[0].len / 8, size = views[2].len / 8, windows = views[8].len / 8;
    if (views[1].len != cells || (windows == 0 ? cells != 0 : cells % windows != 0)) {
        PyErr_SetString(PyExc_ValueError, "slots and valid must be (windows, panes), as n_out has windows");
        goto done;
    }
    for (int j = 3; j < 8; j++)
        if (has[j] && views[j].len / 8 != size) {
            PyErr_Format(PyExc_ValueError, "%s must have one entry per slot, as counts", names[j]);
            goto done;
        }
    for (int j = 9; j < 13; j++)
        if (has[j] && views[j].len / 8 != windows) {
            PyErr_Format(PyExc_ValueError, "%s must have one entry per window, as n_out", names[j]);
            goto done;
        }
    const int64_t *slots = views[0].buf;
    const char *valid = views[1].buf;
    for (Py_ssize_t c = 0; c < cells; c++)
        if (valid[c] && (slots[c] < 0 || slots[c] >= size)) {
            PyErr_Format(PyExc_IndexError, "slot %lld is outside the %zd slots", (long long)slots[c], size);
            goto done;
        }
    const int64_t *counts = views[2].buf;
    const double *sums = has[3] ? views[3].buf : NULL, *means = has[4] ? views[4].buf : NULL;
    const double *m2s = has[5] ? views[5].buf : NULL, *lows = has[6] ? views[6].buf : NULL;
    const double *highs = has[7] ? views[7].buf : NULL;
    int64_t *n_out = views[8].buf;
    double *sum_out = has[9] ? views[9].buf : NULL, *m2_out = has[10] ? views[10].buf : NULL;
    double *lo_out = has[11] ? views[11].buf : NULL, *hi_out = has[12] ? views[12].buf : NULL;
    Py_ssize_t panes = windows ? cells / windows : 0;
    for (Py_ssize_t w = 0; w < windows; w++) {
        int64_t count = 0;
        double total = 0.0, mean = 0.0, m2 = 0.0, lo = INFINITY, hi = -INFINITY;
        for (Py_ssize_t j = w * panes; j < (w + 1) * panes; j++) {
            if (!valid[j]) continue;
            int64_t s = slots[j], nb = counts[s];
            if (sums) total = total + sums[s];
            if (means && nb > 0) {
                int64_t t = count + nb;
                double delta = means[s] - mean;
                m2 = m2 + (m2s[s] + delta * delta * (double)count * (double)nb / (double)t);
                mean = mean + delta * (double)nb / (double)t;
            }
            count += nb;
            if (lows && lows[s] < lo) lo = lows[s];
            if (highs && highs[s] > hi) hi = highs[s];
        }
        n_out[w] = count;
        if (sum_out) sum_out[w] = total;
        if (m2_out) m2_out[w] = m2;
        if (lo_out) lo_out[w] = lo;
        if (hi_out) hi_out[w] = hi;
    }
    result = Py_None;
    Py_INCREF(result);
done:
    for (int j = 0; j < 13; j++)
        if (has[j]) PyBuffer_Release(&views[j]);
    return result;
}

static PyMethodDef methods[] = {
    {"fold", fold, METH_VARARGS,
     "fold(slots, values, counts, sums, means, m2s, lows, highs): pane aggregates, event by event "
     "(see features/windows/_fold.c)."},
    {"merge", merge, METH_VARARGS,
     "merge(slots, valid, counts, sums, means, m2s, lows, highs, n_out, sum_out, m2_out, lo_out, hi_out): "
     "windows from their panes (see features/windows/_fold.c)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "features.windows._fold",
                                    "Pane aggregates updated event by event.", -1, methods,
                                    NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__fold(void) { return PyModule_Create(&module); }
