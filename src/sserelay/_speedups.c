/* Two steps of the relay's per-chunk path in C: sserelay/speedups.py defines both in Python,
 * says what each must return, and is what runs where this module was not built. The tests
 * (tests/test_speedups.py) hold the two to the same answers.
 *
 * Why C: in CPython 3.11 these few byte checks cost more than the parse of the chunk's
 * HTTP framing that precedes them: every slice is an allocation and every bytes.find()
 * parses its arguments as a tuple. docs/decisions.md, "The per-chunk checks in C", has the
 * measurements.
 */
#define PY_SSIZE_T_CLEAN
#define _GNU_SOURCE /* memmem */
#include <Python.h>
#include <string.h>

static const char USAGE_KEY[] = "\"usage\"";
static const char ERROR_WORD[] = "\"error\"";
static const char OBJECT_START[] = "data: {";
static const char OBJECT_END[] = "}\n\n";

/* speedups.usage_present: `"usage"` occurs, and its value (after spaces, tabs and the
 * colon, within the 9 bytes after the key) is not `null`. Only the first occurrence counts. */
static int
usage_present(const char *s, Py_ssize_t n)
{
    const char *at = memmem(s, (size_t)n, USAGE_KEY, 7);
    if (at == NULL) {
        return 0;
    }
    Py_ssize_t i = (at - s) + 7;
    Py_ssize_t end = i + 9 < n ? i + 9 : n;
    while (i < end && (s[i] == ' ' || s[i] == '\t' || s[i] == ':')) {
        i++;
    }
    return !(end - i >= 4 && memcmp(s + i, "null", 4) == 0);
}

static PyObject *
speedups_usage_present(PyObject *module, PyObject *arg)
{
    if (!PyBytes_Check(arg)) {
        PyErr_Format(PyExc_TypeError, "usage_present() takes bytes, not %.100s",
                     Py_TYPE(arg)->tp_name);
        return NULL;
    }
    return PyBool_FromLong(usage_present(PyBytes_AS_STRING(arg), PyBytes_GET_SIZE(arg)));
}

/* speedups.plain_event: the read is exactly one `data: {...}\n\n` event (no CR, no other
 * LF) whose JSON holds no `"error"` and no non-null `"usage"`. */
static PyObject *
speedups_plain_event(PyObject *module, PyObject *arg)
{
    if (!PyBytes_Check(arg)) {
        PyErr_Format(PyExc_TypeError, "plain_event() takes bytes, not %.100s",
                     Py_TYPE(arg)->tp_name);
        return NULL;
    }
    const char *s = PyBytes_AS_STRING(arg);
    Py_ssize_t n = PyBytes_GET_SIZE(arg);
    /* Shorter than `data: {}\n\n`, the head and the tail would overlap. */
    if (n < 10 || memcmp(s, OBJECT_START, 7) != 0 || memcmp(s + n - 3, OBJECT_END, 3) != 0) {
        Py_RETURN_FALSE;
    }
    if (memchr(s, '\n', (size_t)n) != s + n - 2 || memchr(s, '\r', (size_t)n) != NULL) {
        Py_RETURN_FALSE;
    }
    if (memmem(s, (size_t)n, ERROR_WORD, 7) != NULL || usage_present(s, n)) {
        Py_RETURN_FALSE;
    }
    Py_RETURN_TRUE;
}

/* speedups.http_chunk: `data` as one piece of a chunked HTTP/1.1 body (RFC 9112, 7.1):
 * its length in lower-case hex, CRLF, the bytes, CRLF. */
static PyObject *
speedups_http_chunk(PyObject *module, PyObject *arg)
{
    if (!PyBytes_Check(arg)) {
        PyErr_Format(PyExc_TypeError, "http_chunk() takes bytes, not %.100s",
                     Py_TYPE(arg)->tp_name);
        return NULL;
    }
    static const char HEX[] = "0123456789abcdef";
    Py_ssize_t n = PyBytes_GET_SIZE(arg);
    char size[2 * sizeof(size_t)];
    int digits = 0;
    size_t left = (size_t)n;
    do {
        size[sizeof size - 1 - digits++] = HEX[left & 15];
        left >>= 4;
    } while (left);
    PyObject *out = PyBytes_FromStringAndSize(NULL, digits + 2 + n + 2);
    if (out == NULL) {
        return NULL;
    }
    char *p = PyBytes_AS_STRING(out);
    memcpy(p, size + sizeof size - digits, (size_t)digits);
    p += digits;
    *p++ = '\r';
    *p++ = '\n';
    memcpy(p, PyBytes_AS_STRING(arg), (size_t)n);
    p += n;
    *p++ = '\r';
    *p = '\n';
    return out;
}

static PyMethodDef speedups_methods[] = {
    {"plain_event", speedups_plain_event, METH_O,
     "Whether a read is one plain `data: {...}` event that the pass-through may forward as "
     "it is (see sserelay.speedups)."},
    {"usage_present", speedups_usage_present, METH_O,
     "Whether `\"usage\"` occurs with a value other than null (see sserelay.speedups)."},
    {"http_chunk", speedups_http_chunk, METH_O,
     "`data` framed as one piece of a chunked HTTP/1.1 body (see sserelay.speedups)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef speedups_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "sserelay._speedups",
    .m_doc = "The relay's per-chunk byte checks and framing in C (see sserelay.speedups).",
    .m_size = 0,
    .m_methods = speedups_methods,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    return PyModuleDef_Init(&speedups_module);
}
