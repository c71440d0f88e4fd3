/* Steps of the relay's per-chunk path in C. sserelay/speedups.py defines each in Python,
 * which says what it must return and is what runs where this module was not built; the
 * tests (tests/test_speedups.py) hold the two to the same answers.
 *
 * Why C: in CPython 3.11 these few byte checks cost more than the parse of the chunk's
 * HTTP framing that precedes them: every slice is an allocation and every bytes.find()
 * parses its arguments as a tuple. docs/decisions.md, "The per-chunk checks in C", has the
 * measurements.
 */
#define PY_SSIZE_T_CLEAN
#define _GNU_SOURCE /* memmem */
#include <Python.h>
#include <structmember.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

static const char USAGE_KEY[] = "\"usage\"";
static const char ERROR_WORD[] = "\"error\"";
static const char OBJECT_START[] = "data: {";
static const char OBJECT_END[] = "}\n\n";

/* Whether `arg` is bytes; if not, a TypeError naming `function` and the type given. */
static int
is_bytes(PyObject *arg, const char *function)
{
    if (PyBytes_Check(arg)) {
        return 1;
    }
    PyErr_Format(PyExc_TypeError, "%s() takes bytes, not %.100s", function,
                 Py_TYPE(arg)->tp_name);
    return 0;
}

/* Whether the value after the `"usage"` key at `at` (after spaces, tabs and the colon,
 * within the 9 bytes after the key) is other than `null`. */
static int
usage_value_present(const char *s, Py_ssize_t n, const char *at)
{
    Py_ssize_t i = (at - s) + 7;
    Py_ssize_t end = i + 9 < n ? i + 9 : n;
    while (i < end && (s[i] == ' ' || s[i] == '\t' || s[i] == ':')) {
        i++;
    }
    return !(end - i >= 4 && memcmp(s + i, "null", 4) == 0);
}

/* The quoted keys the per-chunk checks look for, found in one pass over `s`: every
 * occurrence of `"error"` or `"usage"` starts at a quote, so only the quotes are tried.
 * Where SSE2 is there (all of x86-64) the quotes are found 16 bytes at a time.
 *
 * Why not memmem: glibc's builds a shift table for each call, and the two calls of a
 * plain-event check were ~1,400 instructions per chat chunk of ~250 bytes (callgrind),
 * 9% of a relayed chunk (docs/decisions.md, "The chunk path, fourth round"). */
typedef struct {
    int error;          /* `"error"` occurs */
    const char *usage;  /* the first `"usage"`, or NULL */
} QuotedKeys;

static inline int
quoted_key_at(const char *s, Py_ssize_t n, Py_ssize_t i, QuotedKeys *found)
{
    /* s[i] is a quote; returns 1 once `"error"` is found (nothing more to learn). */
    if (n - i < 7) {
        return 0;
    }
    if (s[i + 1] == 'e' && memcmp(s + i, ERROR_WORD, 7) == 0) {
        found->error = 1;
        return 1;
    }
    if (s[i + 1] == 'u' && found->usage == NULL && memcmp(s + i, USAGE_KEY, 7) == 0) {
        found->usage = s + i;
    }
    return 0;
}

static QuotedKeys
find_quoted_keys(const char *s, Py_ssize_t n)
{
    QuotedKeys found = {0, NULL};
    Py_ssize_t i = 0;
#ifdef __SSE2__
    const __m128i quote = _mm_set1_epi8('"');
    for (; i + 16 <= n; i += 16) {
        __m128i block = _mm_loadu_si128((const __m128i *)(s + i));
        unsigned mask = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(block, quote));
        while (mask != 0) {
            if (quoted_key_at(s, n, i + __builtin_ctz(mask), &found)) {
                return found;
            }
            mask &= mask - 1;
        }
    }
#endif
    for (; i < n; i++) {
        if (s[i] == '"' && quoted_key_at(s, n, i, &found)) {
            return found;
        }
    }
    return found;
}

/* speedups.usage_present: `"usage"` occurs, and its value (after spaces, tabs and the
 * colon, within the 9 bytes after the key) is not `null`. Only the first occurrence counts. */
static int
usage_present(const char *s, Py_ssize_t n)
{
    const char *at = memmem(s, (size_t)n, USAGE_KEY, 7);
    return at != NULL && usage_value_present(s, n, at);
}

/* The body of speedups.plain_event, for bytes already checked. Shorter than
 * `data: {}\n\n`, the head and the tail would overlap. */
static int
is_plain_event(const char *s, Py_ssize_t n)
{
    if (n < 10 || memcmp(s, OBJECT_START, 7) != 0 || memcmp(s + n - 3, OBJECT_END, 3) != 0) {
        return 0;
    }
    if (memchr(s, '\n', (size_t)n) != s + n - 2 || memchr(s, '\r', (size_t)n) != NULL) {
        return 0;
    }
    QuotedKeys keys = find_quoted_keys(s, n);
    return !keys.error && (keys.usage == NULL || !usage_value_present(s, n, keys.usage));
}

static PyObject *
speedups_usage_present(PyObject *module, PyObject *arg)
{
    if (!is_bytes(arg, "usage_present")) {
        return NULL;
    }
    return PyBool_FromLong(usage_present(PyBytes_AS_STRING(arg), PyBytes_GET_SIZE(arg)));
}

/* speedups.plain_event: the read is exactly one `data: {...}\n\n` event (no CR, no other
 * LF) whose JSON holds no `"error"` and no non-null `"usage"`. */
static PyObject *
speedups_plain_event(PyObject *module, PyObject *arg)
{
    if (!is_bytes(arg, "plain_event")) {
        return NULL;
    }
    return PyBool_FromLong(is_plain_event(PyBytes_AS_STRING(arg), PyBytes_GET_SIZE(arg)));
}

/* The length of a chunk's size line for `n` bytes, written at `out` (at least 18 bytes). */
static Py_ssize_t
size_line(char *out, Py_ssize_t n)
{
    static const char HEX[] = "0123456789abcdef";
    char digits[2 * sizeof(size_t)];
    int count = 0;
    size_t left = (size_t)n;
    do {
        digits[sizeof digits - 1 - count++] = HEX[left & 15];
        left >>= 4;
    } while (left);
    memcpy(out, digits + sizeof digits - count, (size_t)count);
    out[count] = '\r';
    out[count + 1] = '\n';
    return count + 2;
}

/* How many digits `value` has in decimal: comparisons, and a division per four digits. */
static inline int
decimal_size(unsigned long long value)
{
    int count = 1;
    while (value >= 10000) {
        value /= 10000;
        count += 4;
    }
    return count + (value >= 10) + (value >= 100) + (value >= 1000);
}

/* `value` in decimal at `out` (at least 20 bytes); its length. Written in place, from its
 * last digit: no buffer and no memcpy call for the few digits a length has. */
static int
decimal(char *out, long long value)
{
    int sign = value < 0;
    unsigned long long left = sign ? 0ULL - (unsigned long long)value : (unsigned long long)value;
    if (sign) {
        *out++ = '-';
    }
    int count = decimal_size(left);
    char *p = out + count;
    do {
        *--p = (char)('0' + left % 10);
        left /= 10;
    } while (left);
    return count + sign;
}

/* One piece of a chunked HTTP/1.1 body (RFC 9112, 7.1) holding `count` parts in order,
 * in one allocation: the parts' length in lower-case hex, CRLF, the parts, CRLF. */
static PyObject *
chunk_of(const char *const *parts, const Py_ssize_t *sizes, int count)
{
    Py_ssize_t body = 0;
    for (int i = 0; i < count; i++) {
        body += sizes[i];
    }
    char head[24];
    Py_ssize_t hlen = size_line(head, body);
    PyObject *out = PyBytes_FromStringAndSize(NULL, hlen + body + 2);
    if (out == NULL) {
        return NULL;
    }
    char *p = PyBytes_AS_STRING(out);
    memcpy(p, head, (size_t)hlen);
    p += hlen;
    for (int i = 0; i < count; i++) {
        memcpy(p, parts[i], (size_t)sizes[i]);
        p += sizes[i];
    }
    p[0] = '\r';
    p[1] = '\n';
    return out;
}

/* Whether `s` (n bytes) starts with `prefix` and ends with `suffix` (both bytes), the two
 * not overlapping: then its middle is at s + len(prefix), n - len(prefix) - len(suffix). */
static int
has_affixes(const char *s, Py_ssize_t n, PyObject *prefix, PyObject *suffix)
{
    Py_ssize_t plen = PyBytes_GET_SIZE(prefix), slen = PyBytes_GET_SIZE(suffix);
    return n >= plen + slen && memcmp(s, PyBytes_AS_STRING(prefix), (size_t)plen) == 0
           && memcmp(s + n - slen, PyBytes_AS_STRING(suffix), (size_t)slen) == 0;
}

/* Every byte printable ASCII (0x20-0x7e), none a quote or a backslash. */
static int
is_plain_ascii(const unsigned char *s, Py_ssize_t n)
{
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned char c = s[i];
        if (c < 0x20 || c > 0x7e || c == '"' || c == '\\') {
            return 0;
        }
    }
    return 1;
}

/* A vectorcall's arguments are exactly one positional: else a TypeError naming `name`. */
static int
one_positional(size_t nargsf, PyObject *kwnames, const char *name)
{
    if (PyVectorcall_NARGS(nargsf) == 1 && (kwnames == NULL || !PyTuple_GET_SIZE(kwnames))) {
        return 1;
    }
    PyErr_Format(PyExc_TypeError, "%s() takes exactly one positional argument", name);
    return 0;
}

/* tp_dealloc of a GC type whose tp_clear is `clear`: heap types hold a reference to their
 * type. */
static void
dealloc_with(PyObject *self, inquiry clear)
{
    PyTypeObject *type = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    clear(self);
    type->tp_free(self);
    Py_DECREF(type);
}

/* speedups.http_entry: http_chunk(prefix + decimal seq + LF + payload), in one allocation. */
static PyObject *
speedups_http_entry(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_Format(PyExc_TypeError, "http_entry() takes 3 arguments (%zd given)", nargs);
        return NULL;
    }
    PyObject *prefix = args[0], *payload = args[2];
    if (!is_bytes(prefix, "http_entry") || !is_bytes(payload, "http_entry")) {
        return NULL;
    }
    long long seq = PyLong_AsLongLong(args[1]);
    if (seq == -1 && PyErr_Occurred()) {
        return NULL;
    }
    char number[24];
    const char *parts[] = {PyBytes_AS_STRING(prefix), number, "\n", PyBytes_AS_STRING(payload)};
    Py_ssize_t sizes[] = {PyBytes_GET_SIZE(prefix), decimal(number, seq), 1,
                          PyBytes_GET_SIZE(payload)};
    return chunk_of(parts, sizes, 4);
}

/* speedups.between: payload without `prefix` and `suffix` if it has both (not overlapping),
 * else None. */
static PyObject *
speedups_between(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_Format(PyExc_TypeError, "between() takes 3 arguments (%zd given)", nargs);
        return NULL;
    }
    PyObject *payload = args[0], *prefix = args[1], *suffix = args[2];
    if (!is_bytes(payload, "between") || !is_bytes(prefix, "between")
        || !is_bytes(suffix, "between")) {
        return NULL;
    }
    const char *s = PyBytes_AS_STRING(payload);
    Py_ssize_t n = PyBytes_GET_SIZE(payload), plen = PyBytes_GET_SIZE(prefix);
    if (!has_affixes(s, n, prefix, suffix)) {
        Py_RETURN_NONE;
    }
    return PyBytes_FromStringAndSize(s + plen, n - plen - PyBytes_GET_SIZE(suffix));
}

/* One argument of a Redis command as bytes: its pointer and length; ints are written into
 * `digits` (at least 20 bytes). 0 on success, -1 with an exception set. */
static int
resp_argument(PyObject *arg, const char **data, Py_ssize_t *size, char *digits)
{
    if (PyBytes_Check(arg)) {
        *data = PyBytes_AS_STRING(arg);
        *size = PyBytes_GET_SIZE(arg);
        return 0;
    }
    if (PyUnicode_Check(arg)) {
        *data = PyUnicode_AsUTF8AndSize(arg, size);
        return *data == NULL ? -1 : 0;
    }
    if (PyLong_Check(arg)) {
        long long value = PyLong_AsLongLong(arg);
        if (value == -1 && PyErr_Occurred()) {
            return -1;
        }
        *data = digits;
        *size = decimal(digits, value);
        return 0;
    }
    PyErr_Format(PyExc_TypeError, "resp_command() takes bytes, str and int arguments, not %.100s",
                 Py_TYPE(arg)->tp_name);
    return -1;
}

/* speedups.resp_command: a command in Redis' protocol (RESP2): `*<count>` then each
 * argument as a bulk string `$<length>` CRLF bytes CRLF. */
static PyObject *
speedups_resp_command(PyObject *module, PyObject *command)
{
    if (!PyTuple_Check(command)) {
        PyErr_Format(PyExc_TypeError, "resp_command() takes a tuple, not %.100s",
                     Py_TYPE(command)->tp_name);
        return NULL;
    }
    Py_ssize_t count = PyTuple_GET_SIZE(command);
    char digits[24];
    const char *data;
    Py_ssize_t size, total = 1 + decimal_size((unsigned long long)count) + 2;
    for (Py_ssize_t i = 0; i < count; i++) {
        if (resp_argument(PyTuple_GET_ITEM(command, i), &data, &size, digits) < 0) {
            return NULL;
        }
        total += 1 + decimal_size((unsigned long long)size) + 2 + size + 2;
    }
    PyObject *out = PyBytes_FromStringAndSize(NULL, total);
    if (out == NULL) {
        return NULL;
    }
    char *p = PyBytes_AS_STRING(out);
    *p++ = '*';
    p += decimal(p, count);
    *p++ = '\r';
    *p++ = '\n';
    for (Py_ssize_t i = 0; i < count; i++) {
        /* Cannot fail now: every argument converted in the first pass. */
        resp_argument(PyTuple_GET_ITEM(command, i), &data, &size, digits);
        *p++ = '$';
        p += decimal(p, size);
        *p++ = '\r';
        *p++ = '\n';
        memcpy(p, data, (size_t)size);
        p += size;
        *p++ = '\r';
        *p++ = '\n';
    }
    return out;
}

/* speedups.one_data_line: the value of `chunk` if it is exactly `data: <value>\n\n` with no
 * other line break; else None. */
static PyObject *
speedups_one_data_line(PyObject *module, PyObject *arg)
{
    if (!is_bytes(arg, "one_data_line")) {
        return NULL;
    }
    const char *s = PyBytes_AS_STRING(arg);
    Py_ssize_t n = PyBytes_GET_SIZE(arg);
    if (n < 8 || memcmp(s, "data: ", 6) != 0 || s[n - 1] != '\n'
        || memchr(s, '\n', (size_t)n) != s + n - 2 || memchr(s, '\r', (size_t)n) != NULL) {
        Py_RETURN_NONE;
    }
    return PyBytes_FromStringAndSize(s + 6, n - 8);
}

/* speedups.plain_ascii_text: every byte printable ASCII (0x20-0x7e), none a quote or a
 * backslash: a JSON string literal's content that is its text as it is. */
static PyObject *
speedups_plain_ascii_text(PyObject *module, PyObject *arg)
{
    if (!is_bytes(arg, "plain_ascii_text")) {
        return NULL;
    }
    return PyBool_FromLong(
        is_plain_ascii((const unsigned char *)PyBytes_AS_STRING(arg), PyBytes_GET_SIZE(arg)));
}

/* speedups.http_chunk: `data` as one piece of a chunked HTTP/1.1 body. */
static PyObject *
speedups_http_chunk(PyObject *module, PyObject *arg)
{
    if (!is_bytes(arg, "http_chunk")) {
        return NULL;
    }
    const char *parts[] = {PyBytes_AS_STRING(arg)};
    Py_ssize_t sizes[] = {PyBytes_GET_SIZE(arg)};
    return chunk_of(parts, sizes, 1);
}

/* speedups.ChunkWriter: writes to a uvicorn request cycle's transport as
 * RequestResponseCycle.send does for a chunked body, without a Python frame per chunk. */
typedef struct {
    PyObject_HEAD
    PyObject *cycle;
    PyObject *flow;
    PyObject *transport_write;
    Py_ssize_t sent;
} ChunkWriter;

static PyObject *DISCONNECTED, *WRITE_PAUSED, *TRANSPORT, *FLOW, *WRITE;

static int
chunk_writer_init(ChunkWriter *self, PyObject *args, PyObject *kwargs)
{
    PyObject *cycle;
    if (!PyArg_ParseTuple(args, "O:ChunkWriter", &cycle)) {
        return -1;
    }
    PyObject *transport = PyObject_GetAttr(cycle, TRANSPORT);
    if (transport == NULL) {
        return -1;
    }
    PyObject *write = PyObject_GetAttr(transport, WRITE);
    Py_DECREF(transport);
    if (write == NULL) {
        return -1;
    }
    PyObject *flow = PyObject_GetAttr(cycle, FLOW);
    if (flow == NULL) {
        Py_DECREF(write);
        return -1;
    }
    Py_INCREF(cycle);
    Py_XSETREF(self->cycle, cycle);
    Py_XSETREF(self->flow, flow);
    Py_XSETREF(self->transport_write, write);
    self->sent = 0;
    return 0;
}

static int
chunk_writer_traverse(ChunkWriter *self, visitproc visit, void *arg)
{
    Py_VISIT(self->cycle);
    Py_VISIT(self->flow);
    Py_VISIT(self->transport_write);
    Py_VISIT(Py_TYPE(self));
    return 0;
}

static int
chunk_writer_clear(ChunkWriter *self)
{
    Py_CLEAR(self->cycle);
    Py_CLEAR(self->flow);
    Py_CLEAR(self->transport_write);
    return 0;
}

static void
chunk_writer_dealloc(ChunkWriter *self)
{
    dealloc_with((PyObject *)self, (inquiry)chunk_writer_clear);
}

/* The truth of `obj.name`: 1, 0, or -1 with an exception set. */
static int
attribute_is_true(PyObject *obj, PyObject *name)
{
    PyObject *value = PyObject_GetAttr(obj, name);
    if (value == NULL) {
        return -1;
    }
    int truth = PyObject_IsTrue(value);
    Py_DECREF(value);
    return truth;
}

/* Whether the client is still there (1), gone (0), or an error (-1), which is also the
 * answer for a writer whose __init__ never ran (its references are still NULL). */
static int
chunk_writer_connected(ChunkWriter *self)
{
    if (self->cycle == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "ChunkWriter.__init__() was not called");
        return -1;
    }
    int gone = attribute_is_true(self->cycle, DISCONNECTED);
    return gone < 0 ? -1 : !gone;
}

/* Hand `chunk` to the transport; True while the client's socket takes more. */
static PyObject *
chunk_writer_send(ChunkWriter *self, PyObject *chunk)
{
    PyObject *write = Py_NewRef(self->transport_write); /* held across the call */
    PyObject *done = PyObject_CallOneArg(write, chunk);
    Py_DECREF(write);
    if (done == NULL) {
        return NULL;
    }
    Py_DECREF(done);
    self->sent++;
    if (self->flow == NULL) { /* cleared by what the write ran */
        PyErr_SetString(PyExc_RuntimeError, "the ChunkWriter was cleared while writing");
        return NULL;
    }
    int paused = attribute_is_true(self->flow, WRITE_PAUSED);
    if (paused < 0) {
        return NULL;
    }
    return PyBool_FromLong(!paused);
}

static PyObject *
chunk_writer_write(ChunkWriter *self, PyObject *data)
{
    int connected = chunk_writer_connected(self);
    if (connected <= 0) {
        return connected < 0 ? NULL : Py_NewRef(Py_False);
    }
    if (!is_bytes(data, "write")) {
        return NULL;
    }
    const char *parts[] = {PyBytes_AS_STRING(data)};
    Py_ssize_t sizes[] = {PyBytes_GET_SIZE(data)};
    PyObject *chunk = chunk_of(parts, sizes, 1);
    if (chunk == NULL) {
        return NULL;
    }
    PyObject *result = chunk_writer_send(self, chunk);
    Py_DECREF(chunk);
    return result;
}

static PyObject *
chunk_writer_write_chunk(ChunkWriter *self, PyObject *chunk)
{
    int connected = chunk_writer_connected(self);
    if (connected <= 0) {
        return connected < 0 ? NULL : Py_NewRef(Py_False);
    }
    return chunk_writer_send(self, chunk);
}

static PyMethodDef chunk_writer_methods[] = {
    {"write", (PyCFunction)chunk_writer_write, METH_O,
     "`data` as one HTTP chunk to the client; False if it is gone or not reading."},
    {"write_chunk", (PyCFunction)chunk_writer_write_chunk, METH_O,
     "An already framed HTTP chunk to the client; False if it is gone or not reading."},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef chunk_writer_members[] = {
    {"cycle", T_OBJECT, offsetof(ChunkWriter, cycle), READONLY, "The request cycle."},
    {"flow", T_OBJECT, offsetof(ChunkWriter, flow), READONLY, "Its flow control."},
    {"sent", T_PYSSIZET, offsetof(ChunkWriter, sent), 0, "Chunks written so far."},
    {NULL, 0, 0, 0, NULL},
};

static PyType_Slot chunk_writer_slots[] = {
    {Py_tp_doc, "Writes HTTP chunks to a uvicorn request cycle's transport (see "
                "sserelay.speedups.ChunkWriter_py)."},
    {Py_tp_init, chunk_writer_init},
    {Py_tp_new, PyType_GenericNew},
    {Py_tp_traverse, chunk_writer_traverse},
    {Py_tp_clear, chunk_writer_clear},
    {Py_tp_dealloc, chunk_writer_dealloc},
    {Py_tp_methods, chunk_writer_methods},
    {Py_tp_members, chunk_writer_members},
    {0, NULL},
};

static PyType_Spec chunk_writer_spec = {
    .name = "sserelay._speedups.ChunkWriter",
    .basicsize = sizeof(ChunkWriter),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .slots = chunk_writer_slots,
};

/* speedups.Forward: `target(data)` for each call, counted, with no Python frame: the
 * upstream parser's body callback, which each response points at its consumer. */
typedef struct {
    PyObject_HEAD
    PyObject *target;
    Py_ssize_t count;
    vectorcallfunc vectorcall;
} Forward;

static PyObject *
forward_vectorcall(PyObject *op, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    Forward *self = (Forward *)op;
    if (!one_positional(nargsf, kwnames, "Forward")) {
        return NULL;
    }
    self->count++;
    PyObject *target = self->target;
    if (target == NULL || target == Py_None) {
        Py_RETURN_NONE;
    }
    Py_INCREF(target); /* the call may retarget (and so release) it */
    PyObject *result = PyObject_CallOneArg(target, args[0]);
    Py_DECREF(target);
    if (result == NULL) {
        return NULL;
    }
    Py_DECREF(result);
    Py_RETURN_NONE;
}

static int
forward_init(Forward *self, PyObject *args, PyObject *kwargs)
{
    PyObject *target = Py_None;
    if (!PyArg_ParseTuple(args, "|O:Forward", &target)) {
        return -1;
    }
    Py_INCREF(target);
    Py_XSETREF(self->target, target);
    self->count = 0;
    self->vectorcall = forward_vectorcall;
    return 0;
}

static PyObject *
forward_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    Forward *self = (Forward *)PyType_GenericNew(type, args, kwargs);
    if (self != NULL) {
        self->vectorcall = forward_vectorcall;
    }
    return (PyObject *)self;
}

static int
forward_traverse(Forward *self, visitproc visit, void *arg)
{
    Py_VISIT(self->target);
    Py_VISIT(Py_TYPE(self));
    return 0;
}

static int
forward_clear(Forward *self)
{
    Py_CLEAR(self->target);
    return 0;
}

static void
forward_dealloc(Forward *self)
{
    dealloc_with((PyObject *)self, (inquiry)forward_clear);
}

static PyMemberDef forward_members[] = {
    {"target", T_OBJECT, offsetof(Forward, target), 0, "What each call's argument goes to."},
    {"count", T_PYSSIZET, offsetof(Forward, count), 0, "Calls so far."},
    {"__vectorcalloffset__", T_PYSSIZET, offsetof(Forward, vectorcall), READONLY},
    {NULL, 0, 0, 0, NULL},
};

static PyType_Slot forward_slots[] = {
    {Py_tp_doc, "Hands each call's one argument to `target` and counts the calls (see "
                "sserelay.speedups.Forward_py)."},
    {Py_tp_new, forward_new},
    {Py_tp_init, forward_init},
    {Py_tp_call, PyVectorcall_Call},
    {Py_tp_traverse, forward_traverse},
    {Py_tp_clear, forward_clear},
    {Py_tp_dealloc, forward_dealloc},
    {Py_tp_members, forward_members},
    {0, NULL},
};

static PyType_Spec forward_spec = {
    .name = "sserelay._speedups.Forward",
    .basicsize = sizeof(Forward),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .slots = forward_slots,
};

/* speedups.Guarded: `func(arg)`, an exception that is one of `errors` handed to
 * `handler(exc)` instead of raised: a protocol's data_received with no Python frame. */
typedef struct {
    PyObject_HEAD
    PyObject *func;
    PyObject *errors;
    PyObject *handler;
    vectorcallfunc vectorcall;
} Guarded;

static PyObject *
guarded_vectorcall(PyObject *op, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    Guarded *self = (Guarded *)op;
    if (!one_positional(nargsf, kwnames, "Guarded")) {
        return NULL;
    }
    if (self->func == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Guarded.__init__() was not called");
        return NULL;
    }
    PyObject *func = Py_NewRef(self->func); /* held across the call */
    PyObject *result = PyObject_CallOneArg(func, args[0]);
    Py_DECREF(func);
    if (result != NULL) {
        Py_DECREF(result);
        Py_RETURN_NONE;
    }
    if (!PyErr_ExceptionMatches(self->errors)) {
        return NULL;
    }
    PyObject *type, *value, *traceback;
    PyErr_Fetch(&type, &value, &traceback);
    PyErr_NormalizeException(&type, &value, &traceback);
    if (traceback != NULL && value != NULL) {
        PyException_SetTraceback(value, traceback);
    }
    PyObject *handler = self->handler;
    Py_INCREF(handler);
    PyObject *handled = PyObject_CallOneArg(handler, value != NULL ? value : Py_None);
    Py_DECREF(handler);
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(traceback);
    if (handled == NULL) {
        return NULL;
    }
    Py_DECREF(handled);
    Py_RETURN_NONE;
}

static int
guarded_init(Guarded *self, PyObject *args, PyObject *kwargs)
{
    PyObject *func, *errors, *handler;
    if (!PyArg_ParseTuple(args, "OOO:Guarded", &func, &errors, &handler)) {
        return -1;
    }
    Py_INCREF(func);
    Py_INCREF(errors);
    Py_INCREF(handler);
    Py_XSETREF(self->func, func);
    Py_XSETREF(self->errors, errors);
    Py_XSETREF(self->handler, handler);
    return 0;
}

static PyObject *
guarded_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    Guarded *self = (Guarded *)PyType_GenericNew(type, args, kwargs);
    if (self != NULL) {
        self->vectorcall = guarded_vectorcall;
    }
    return (PyObject *)self;
}

static int
guarded_traverse(Guarded *self, visitproc visit, void *arg)
{
    Py_VISIT(self->func);
    Py_VISIT(self->errors);
    Py_VISIT(self->handler);
    Py_VISIT(Py_TYPE(self));
    return 0;
}

static int
guarded_clear(Guarded *self)
{
    Py_CLEAR(self->func);
    Py_CLEAR(self->errors);
    Py_CLEAR(self->handler);
    return 0;
}

static void
guarded_dealloc(Guarded *self)
{
    dealloc_with((PyObject *)self, (inquiry)guarded_clear);
}

static PyMemberDef guarded_members[] = {
    {"__vectorcalloffset__", T_PYSSIZET, offsetof(Guarded, vectorcall), READONLY},
    {NULL, 0, 0, 0, NULL},
};

static PyType_Slot guarded_slots[] = {
    {Py_tp_doc, "Calls `func(arg)`; an exception among `errors` goes to `handler` (see "
                "sserelay.speedups.Guarded_py)."},
    {Py_tp_new, guarded_new},
    {Py_tp_init, guarded_init},
    {Py_tp_call, PyVectorcall_Call},
    {Py_tp_traverse, guarded_traverse},
    {Py_tp_clear, guarded_clear},
    {Py_tp_dealloc, guarded_dealloc},
    {Py_tp_members, guarded_members},
    {0, NULL},
};

static PyType_Spec guarded_spec = {
    .name = "sserelay._speedups.Guarded",
    .basicsize = sizeof(Guarded),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .slots = guarded_slots,
};

/* speedups.EntryTail: a pushed follower's `on_item`, for the usual item, an `Entry`: its id
 * line and payload as one HTTP chunk, written in one C call. Other items go to the
 * subclass's `on_other`. */
typedef struct {
    PyObject_HEAD
    PyObject *prefix;
    PyObject *write_chunk;
    PyObject *entry_type;
    PyObject *stopped;
    Py_ssize_t pos;
} EntryTail;

static PyObject *DONE, *SET_RESULT, *ON_OTHER;

static int
entry_tail_init(EntryTail *self, PyObject *args, PyObject *kwargs)
{
    PyObject *prefix, *write_chunk, *entry_type;
    Py_ssize_t pos;
    if (!PyArg_ParseTuple(args, "SOOn:EntryTail", &prefix, &write_chunk, &entry_type, &pos)) {
        return -1;
    }
    if (!PyType_Check(entry_type) || !PyType_IsSubtype((PyTypeObject *)entry_type,
                                                       &PyTuple_Type)) {
        PyErr_SetString(PyExc_TypeError, "EntryTail() takes a tuple subclass for its entries");
        return -1;
    }
    Py_INCREF(prefix);
    Py_INCREF(write_chunk);
    Py_INCREF(entry_type);
    Py_XSETREF(self->prefix, prefix);
    Py_XSETREF(self->write_chunk, write_chunk);
    Py_XSETREF(self->entry_type, entry_type);
    Py_XSETREF(self->stopped, Py_NewRef(Py_None));
    self->pos = pos;
    return 0;
}

static int
entry_tail_traverse(EntryTail *self, visitproc visit, void *arg)
{
    Py_VISIT(self->prefix);
    Py_VISIT(self->write_chunk);
    Py_VISIT(self->entry_type);
    Py_VISIT(self->stopped);
    Py_VISIT(Py_TYPE(self));
    return 0;
}

static int
entry_tail_clear(EntryTail *self)
{
    Py_CLEAR(self->prefix);
    Py_CLEAR(self->write_chunk);
    Py_CLEAR(self->entry_type);
    Py_CLEAR(self->stopped);
    return 0;
}

static void
entry_tail_dealloc(EntryTail *self)
{
    dealloc_with((PyObject *)self, (inquiry)entry_tail_clear);
}

/* The result of calling `obj.name()` as a truth value: 1, 0, or -1 with an exception. */
static int
method_is_true(PyObject *obj, PyObject *name)
{
    PyObject *value = PyObject_CallMethodNoArgs(obj, name);
    if (value == NULL) {
        return -1;
    }
    int truth = PyObject_IsTrue(value);
    Py_DECREF(value);
    return truth;
}

static PyObject *
entry_tail_on_item(EntryTail *self, PyObject *item)
{
    if (self->prefix == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "EntryTail.__init__() was not called");
        return NULL;
    }
    PyObject *stopped = self->stopped;
    if (stopped == NULL || stopped == Py_None) {
        Py_RETURN_NONE;
    }
    Py_INCREF(stopped);
    int done = method_is_true(stopped, DONE);
    PyObject *result = NULL;
    if (done != 0) {
        result = done < 0 ? NULL : Py_NewRef(Py_None);
        goto finally;
    }
    if ((PyObject *)Py_TYPE(item) != self->entry_type) {
        result = PyObject_CallMethodOneArg((PyObject *)self, ON_OTHER, item);
        goto finally;
    }
    PyObject *payload = PyTuple_GET_SIZE(item) == 2 ? PyTuple_GET_ITEM(item, 1) : NULL;
    if (payload == NULL || !is_bytes(payload, "on_item")) {
        if (payload == NULL) {
            PyErr_SetString(PyExc_TypeError, "on_item() takes an entry of (seq, payload)");
        }
        goto finally;
    }
    long long seq = PyLong_AsLongLong(PyTuple_GET_ITEM(item, 0));
    if (seq == -1 && PyErr_Occurred()) {
        goto finally;
    }
    self->pos = (Py_ssize_t)seq;
    char number[24];
    const char *parts[] = {PyBytes_AS_STRING(self->prefix), number, "\n",
                           PyBytes_AS_STRING(payload)};
    Py_ssize_t sizes[] = {PyBytes_GET_SIZE(self->prefix), decimal(number, seq), 1,
                          PyBytes_GET_SIZE(payload)};
    PyObject *chunk = chunk_of(parts, sizes, 4);
    if (chunk == NULL) {
        goto finally;
    }
    PyObject *write_chunk = Py_NewRef(self->write_chunk); /* held across the call */
    PyObject *written = PyObject_CallOneArg(write_chunk, chunk);
    Py_DECREF(write_chunk);
    Py_DECREF(chunk);
    if (written == NULL) {
        goto finally;
    }
    int taken = PyObject_IsTrue(written);
    Py_DECREF(written);
    if (taken < 0) {
        goto finally;
    }
    if (!taken) { /* the client is not reading: it catches up from the log later */
        PyObject *set = PyObject_CallMethodOneArg(stopped, SET_RESULT, Py_None);
        if (set == NULL) {
            goto finally;
        }
        Py_DECREF(set);
    }
    result = Py_NewRef(Py_None);
finally:
    Py_DECREF(stopped);
    return result;
}

static PyMethodDef entry_tail_methods[] = {
    {"on_item", (PyCFunction)entry_tail_on_item, METH_O,
     "Write an Entry to the client (another item: `on_other`), unless stopped."},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef entry_tail_members[] = {
    {"prefix", T_OBJECT, offsetof(EntryTail, prefix), READONLY, "`id: <stream>:`"},
    {"stopped", T_OBJECT, offsetof(EntryTail, stopped), 0,
     "The future that ends this subscription (None: not subscribed)."},
    {"pos", T_PYSSIZET, offsetof(EntryTail, pos), 0, "The last seq handed on."},
    {NULL, 0, 0, 0, NULL},
};

static PyType_Slot entry_tail_slots[] = {
    {Py_tp_doc, "A pushed follower's on_item, for entries (see "
                "sserelay.speedups.EntryTail_py)."},
    {Py_tp_init, entry_tail_init},
    {Py_tp_new, PyType_GenericNew},
    {Py_tp_traverse, entry_tail_traverse},
    {Py_tp_clear, entry_tail_clear},
    {Py_tp_dealloc, entry_tail_dealloc},
    {Py_tp_methods, entry_tail_methods},
    {Py_tp_members, entry_tail_members},
    {0, NULL},
};

static PyType_Spec entry_tail_spec = {
    .name = "sserelay._speedups.EntryTail",
    .basicsize = sizeof(EntryTail),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .slots = entry_tail_slots,
};

/* speedups.Retained: RetainedPayloads' append, once its affixes are learned (`_learned`):
 * the middle of each payload that has both (else the payload as a 1-tuple) onto the deque
 * `_items`, in one C call; with no affixes (nothing shared), the payload itself. Until
 * then it calls the subclass's `_append_learning`. */
typedef struct {
    PyObject_HEAD
    PyObject *items;
    PyObject *items_append; /* items.append, looked up once: `_items` is read-only */
    PyObject *prefix;
    PyObject *suffix;
    Py_ssize_t cut;
    char learned;
} Retained;

static PyObject *APPEND, *APPEND_LEARNING;

static int
retained_init(Retained *self, PyObject *args, PyObject *kwargs)
{
    PyObject *items;
    if (!PyArg_ParseTuple(args, "O:Retained", &items)) {
        return -1;
    }
    PyObject *items_append = PyObject_GetAttr(items, APPEND);
    if (items_append == NULL) {
        return -1;
    }
    Py_INCREF(items);
    Py_XSETREF(self->items, items);
    Py_XSETREF(self->items_append, items_append);
    Py_XSETREF(self->prefix, PyBytes_FromStringAndSize(NULL, 0));
    Py_XSETREF(self->suffix, PyBytes_FromStringAndSize(NULL, 0));
    self->cut = 0;
    self->learned = 0;
    return self->prefix != NULL && self->suffix != NULL ? 0 : -1;
}

static int
retained_traverse(Retained *self, visitproc visit, void *arg)
{
    Py_VISIT(self->items);
    Py_VISIT(self->items_append);
    Py_VISIT(self->prefix);
    Py_VISIT(self->suffix);
    Py_VISIT(Py_TYPE(self));
    return 0;
}

static int
retained_clear(Retained *self)
{
    Py_CLEAR(self->items);
    Py_CLEAR(self->items_append);
    Py_CLEAR(self->prefix);
    Py_CLEAR(self->suffix);
    return 0;
}

static void
retained_dealloc(Retained *self)
{
    dealloc_with((PyObject *)self, (inquiry)retained_clear);
}

static PyObject *
retained_append(Retained *self, PyObject *payload)
{
    if (self->items == NULL || self->items_append == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Retained.__init__() was not called");
        return NULL;
    }
    if (!self->learned || !PyBytes_Check(payload) || self->prefix == NULL
        || self->suffix == NULL || !PyBytes_Check(self->prefix)
        || !PyBytes_Check(self->suffix)) {
        return PyObject_CallMethodOneArg((PyObject *)self, APPEND_LEARNING, payload);
    }
    const char *s = PyBytes_AS_STRING(payload);
    Py_ssize_t n = PyBytes_GET_SIZE(payload), plen = PyBytes_GET_SIZE(self->prefix);
    PyObject *item;
    if (self->cut == 0) {
        item = Py_NewRef(payload); /* learned that nothing is shared: kept as it is */
    } else if (!has_affixes(s, n, self->prefix, self->suffix)) {
        item = PyTuple_Pack(1, payload); /* kept whole */
    } else {
        item = PyBytes_FromStringAndSize(s + plen, n - plen - PyBytes_GET_SIZE(self->suffix));
    }
    if (item == NULL) {
        return NULL;
    }
    PyObject *done = PyObject_CallOneArg(self->items_append, item);
    Py_DECREF(item);
    if (done == NULL) {
        return NULL;
    }
    Py_DECREF(done);
    Py_RETURN_NONE;
}

static PyMethodDef retained_methods[] = {
    {"append", (PyCFunction)retained_append, METH_O,
     "Keep `payload` (its middle, once the affixes are learned)."},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef retained_members[] = {
    {"_items", T_OBJECT, offsetof(Retained, items), READONLY, "The kept items (a deque)."},
    {"_prefix", T_OBJECT, offsetof(Retained, prefix), 0, "The learned prefix."},
    {"_suffix", T_OBJECT, offsetof(Retained, suffix), 0, "The learned suffix."},
    {"_cut", T_PYSSIZET, offsetof(Retained, cut), 0,
     "len(prefix) + len(suffix); 0 until learned, or when nothing is shared."},
    {"_learned", T_BOOL, offsetof(Retained, learned), 0,
     "Whether the affixes are learned (possibly empty): append runs alone."},
    {NULL, 0, 0, 0, NULL},
};

static PyType_Slot retained_slots[] = {
    {Py_tp_doc, "RetainedPayloads' append once learned (see sserelay.speedups.Retained_py)."},
    {Py_tp_init, retained_init},
    {Py_tp_new, PyType_GenericNew},
    {Py_tp_traverse, retained_traverse},
    {Py_tp_clear, retained_clear},
    {Py_tp_dealloc, retained_dealloc},
    {Py_tp_methods, retained_methods},
    {Py_tp_members, retained_members},
    {0, NULL},
};

static PyType_Spec retained_spec = {
    .name = "sserelay._speedups.Retained",
    .basicsize = sizeof(Retained),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .slots = retained_slots,
};

/* speedups.TemplateText: TextReader's `plain_text`: the text between a learned template's
 * `_prefix_bytes` and `_suffix_bytes` when it is plain ASCII, counted in `_hits`; None when
 * there is no template (`_prefix_bytes` is None) or the data does not fit it. */
typedef struct {
    PyObject_HEAD
    PyObject *prefix;
    PyObject *suffix;
    Py_ssize_t hits;
} TemplateText;

static int
template_text_init(TemplateText *self, PyObject *args, PyObject *kwargs)
{
    if (!PyArg_ParseTuple(args, ":TemplateText")) {
        return -1;
    }
    Py_XSETREF(self->prefix, Py_NewRef(Py_None));
    Py_XSETREF(self->suffix, PyBytes_FromStringAndSize(NULL, 0));
    self->hits = 0;
    return self->suffix != NULL ? 0 : -1;
}

static int
template_text_traverse(TemplateText *self, visitproc visit, void *arg)
{
    Py_VISIT(self->prefix);
    Py_VISIT(self->suffix);
    Py_VISIT(Py_TYPE(self));
    return 0;
}

static int
template_text_clear(TemplateText *self)
{
    Py_CLEAR(self->prefix);
    Py_CLEAR(self->suffix);
    return 0;
}

static void
template_text_dealloc(TemplateText *self)
{
    dealloc_with((PyObject *)self, (inquiry)template_text_clear);
}

static PyObject *
template_text_plain_text(TemplateText *self, PyObject *data)
{
    if (!is_bytes(data, "plain_text")) {
        return NULL;
    }
    PyObject *prefix = self->prefix, *suffix = self->suffix;
    if (prefix == NULL || !PyBytes_Check(prefix) || suffix == NULL || !PyBytes_Check(suffix)) {
        Py_RETURN_NONE;
    }
    const char *s = PyBytes_AS_STRING(data);
    Py_ssize_t n = PyBytes_GET_SIZE(data), plen = PyBytes_GET_SIZE(prefix);
    Py_ssize_t size = n - plen - PyBytes_GET_SIZE(suffix);
    if (!has_affixes(s, n, prefix, suffix)
        || !is_plain_ascii((const unsigned char *)s + plen, size)) {
        Py_RETURN_NONE;
    }
    self->hits++;
    return PyBytes_FromStringAndSize(s + plen, size);
}

static PyMethodDef template_text_methods[] = {
    {"plain_text", (PyCFunction)template_text_plain_text, METH_O,
     "The plain ASCII text between the learned prefix and suffix, or None."},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef template_text_members[] = {
    {"_prefix_bytes", T_OBJECT, offsetof(TemplateText, prefix), 0,
     "The template up to the text (UTF-8), or None: no template."},
    {"_suffix_bytes", T_OBJECT, offsetof(TemplateText, suffix), 0,
     "The template after the text (UTF-8)."},
    {"_hits", T_PYSSIZET, offsetof(TemplateText, hits), 0, "Chunks the template served."},
    {NULL, 0, 0, 0, NULL},
};

static PyType_Slot template_text_slots[] = {
    {Py_tp_doc, "TextReader's plain_text (see sserelay.speedups.TemplateText_py)."},
    {Py_tp_init, template_text_init},
    {Py_tp_new, PyType_GenericNew},
    {Py_tp_traverse, template_text_traverse},
    {Py_tp_clear, template_text_clear},
    {Py_tp_dealloc, template_text_dealloc},
    {Py_tp_methods, template_text_methods},
    {Py_tp_members, template_text_members},
    {0, NULL},
};

static PyType_Spec template_text_spec = {
    .name = "sserelay._speedups.TemplateText",
    .basicsize = sizeof(TemplateText),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .slots = template_text_slots,
};

/* speedups.DecoderState: the SSE decoder's state (codec/decoder.py keeps its meaning) and
 * its `take_data_line`, in one C call: a read that is exactly one `data: ` line and a blank
 * line, while the decoder holds nothing, is that line's value. */
typedef struct {
    PyObject_HEAD
    PyObject *at_stream_start;
    PyObject *block_retry;
    PyObject *data;
    PyObject *error;
    PyObject *event_type;
    PyObject *id_buffer;
    PyObject *pending;
    PyObject *skip_lf;
    PyObject *last_event_id;
    PyObject *max_event_bytes;
    PyObject *max_line_bytes;
} DecoderState;

#define DECODER_FIELDS(X) X(at_stream_start) X(block_retry) X(data) X(error) X(event_type) \
    X(id_buffer) X(pending) X(skip_lf) X(last_event_id) X(max_event_bytes) X(max_line_bytes)

static int
decoder_state_traverse(DecoderState *self, visitproc visit, void *arg)
{
#define VISIT(name) Py_VISIT(self->name);
    DECODER_FIELDS(VISIT)
#undef VISIT
    Py_VISIT(Py_TYPE(self));
    return 0;
}

static int
decoder_state_clear(DecoderState *self)
{
#define CLEAR(name) Py_CLEAR(self->name);
    DECODER_FIELDS(CLEAR)
#undef CLEAR
    return 0;
}

static void
decoder_state_dealloc(DecoderState *self)
{
    dealloc_with((PyObject *)self, (inquiry)decoder_state_clear);
}

/* An unset field: the decoder's __init__ did not run. */
static PyObject *
decoder_uninitialised(void)
{
    PyErr_SetString(PyExc_RuntimeError, "the SSE decoder was not initialised");
    return NULL;
}

/* Whether a field is set and true: 1, 0, or -1 with an exception. */
static int
field_is_true(PyObject *value)
{
    if (value == NULL) {
        decoder_uninitialised();
        return -1;
    }
    return PyObject_IsTrue(value);
}

static PyObject *
decoder_state_take_data_line(DecoderState *self, PyObject *chunk)
{
    if (!is_bytes(chunk, "take_data_line")) {
        return NULL;
    }
    /* Each member is read just before its test: a truth test may run Python, which may
     * reassign (and free) a later one. */
    for (int i = 0; i < 5; i++) {
        PyObject *flag = i == 0   ? self->at_stream_start
                         : i == 1 ? self->skip_lf
                         : i == 2 ? self->pending
                         : i == 3 ? self->data
                                  : self->event_type;
        Py_XINCREF(flag);
        int set = field_is_true(flag);
        Py_XDECREF(flag);
        if (set != 0) {
            return set < 0 ? NULL : Py_NewRef(Py_None);
        }
    }
    if (self->block_retry == NULL || self->error == NULL || self->max_line_bytes == NULL
        || self->max_event_bytes == NULL || self->id_buffer == NULL) {
        return decoder_uninitialised();
    }
    if (self->block_retry != Py_None || self->error != Py_None) {
        Py_RETURN_NONE;
    }
    Py_ssize_t max_line = PyLong_AsSsize_t(self->max_line_bytes);
    Py_ssize_t max_event = PyLong_AsSsize_t(self->max_event_bytes);
    if ((max_line == -1 || max_event == -1) && PyErr_Occurred()) {
        return NULL;
    }
    Py_ssize_t limit = max_event > PY_SSIZE_T_MAX - 5 ? PY_SSIZE_T_MAX : max_event + 5;
    if (max_line < limit) {
        limit = max_line;
    }
    if (PyBytes_GET_SIZE(chunk) - 2 > limit) {
        Py_RETURN_NONE;
    }
    PyObject *line = speedups_one_data_line(NULL, chunk);
    if (line != NULL && line != Py_None) {
        Py_INCREF(self->id_buffer);
        Py_XSETREF(self->last_event_id, self->id_buffer); /* as a dispatch sets it */
    }
    return line;
}

static PyMethodDef decoder_state_methods[] = {
    {"take_data_line", (PyCFunction)decoder_state_take_data_line, METH_O,
     "The data of a read that is one event of one `data: ` line while the decoder holds "
     "nothing, as bytes; else None, and nothing changed (see "
     "sserelay.speedups.DecoderState_py)."},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef decoder_state_members[] = {
    {"_at_stream_start", T_OBJECT_EX, offsetof(DecoderState, at_stream_start), 0, NULL},
    {"_block_retry", T_OBJECT_EX, offsetof(DecoderState, block_retry), 0, NULL},
    {"_data", T_OBJECT_EX, offsetof(DecoderState, data), 0, NULL},
    {"_error", T_OBJECT_EX, offsetof(DecoderState, error), 0, NULL},
    {"_event_type", T_OBJECT_EX, offsetof(DecoderState, event_type), 0, NULL},
    {"_id_buffer", T_OBJECT_EX, offsetof(DecoderState, id_buffer), 0, NULL},
    {"_pending", T_OBJECT_EX, offsetof(DecoderState, pending), 0, NULL},
    {"_skip_lf", T_OBJECT_EX, offsetof(DecoderState, skip_lf), 0, NULL},
    {"last_event_id", T_OBJECT_EX, offsetof(DecoderState, last_event_id), 0, NULL},
    {"max_event_bytes", T_OBJECT_EX, offsetof(DecoderState, max_event_bytes), 0, NULL},
    {"max_line_bytes", T_OBJECT_EX, offsetof(DecoderState, max_line_bytes), 0, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyType_Slot decoder_state_slots[] = {
    {Py_tp_doc, "The SSE decoder's state and take_data_line (see "
                "sserelay.speedups.DecoderState_py)."},
    {Py_tp_new, PyType_GenericNew},
    {Py_tp_traverse, decoder_state_traverse},
    {Py_tp_clear, decoder_state_clear},
    {Py_tp_dealloc, decoder_state_dealloc},
    {Py_tp_methods, decoder_state_methods},
    {Py_tp_members, decoder_state_members},
    {0, NULL},
};

static PyType_Spec decoder_state_spec = {
    .name = "sserelay._speedups.DecoderState",
    .basicsize = sizeof(DecoderState),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .slots = decoder_state_slots,
};

/* speedups.Tally: a count shared by many LogStreams and the limit past which their appends
 * are refused (the Redis log's entries queued for Redis, over all its streams). */
typedef struct {
    PyObject_HEAD
    Py_ssize_t count;
    Py_ssize_t limit;
} Tally;

static PyObject *TALLY_TYPE; /* set when the module is made: LogStream checks its tally's type */

static int
tally_init(Tally *self, PyObject *args, PyObject *kwargs)
{
    Py_ssize_t limit;
    if (!PyArg_ParseTuple(args, "n:Tally", &limit)) {
        return -1;
    }
    self->count = 0;
    self->limit = limit;
    return 0;
}

static PyMemberDef tally_members[] = {
    {"count", T_PYSSIZET, offsetof(Tally, count), 0, "Counted so far (less what was taken)."},
    {"limit", T_PYSSIZET, offsetof(Tally, limit), 0, "At or past it, appends are refused."},
    {NULL, 0, 0, 0, NULL},
};

static PyType_Slot tally_slots[] = {
    {Py_tp_doc, "A shared count and its limit (see sserelay.speedups.Tally_py)."},
    {Py_tp_init, tally_init},
    {Py_tp_new, PyType_GenericNew},
    {Py_tp_members, tally_members},
    {0, NULL},
};

static PyType_Spec tally_spec = {
    .name = "sserelay._speedups.Tally",
    .basicsize = sizeof(Tally),
    .flags = Py_TPFLAGS_DEFAULT,
    .slots = tally_slots,
};

/* speedups.LogStream: a memory log stream's append, for a producer that pushes: the payload
 * kept, the seq counted, parked followers woken and each listener handed the Entry, in one
 * C call. The subclass's `_refuse` raises for a stream that has ended. A stream that also
 * queues its payloads for elsewhere (the Redis log's producer copy) has a `pending` list, a
 * shared `tally` of what is pending over all streams, refused at its limit, and an
 * `on_pending` called with the stream when its pending list stops being empty. */
typedef struct {
    PyObject_HEAD
    PyObject *entries;
    PyObject *entries_append; /* entries.append, looked up once: `entries` is read-only */
    PyObject *entry_type;
    PyObject *wake;
    PyObject *ending;
    PyObject *waiters;
    PyObject *listeners;
    PyObject *pending;    /* a list, or None */
    PyObject *tally;      /* a Tally, or None */
    PyObject *on_pending; /* a callable, or None */
    Py_ssize_t last_seq;
} LogStream;

static PyObject *REFUSE;

static int
log_stream_init(LogStream *self, PyObject *args, PyObject *kwargs)
{
    PyObject *entries, *entry_type, *wake;
    if (!PyArg_ParseTuple(args, "OOO:LogStream", &entries, &entry_type, &wake)) {
        return -1;
    }
    if (!PyType_Check(entry_type) || !PyType_IsSubtype((PyTypeObject *)entry_type,
                                                       &PyTuple_Type)) {
        PyErr_SetString(PyExc_TypeError, "LogStream() takes a tuple subclass for its entries");
        return -1;
    }
    PyObject *entries_append = PyObject_GetAttr(entries, APPEND);
    if (entries_append == NULL) {
        return -1;
    }
    PyObject *waiters = PyList_New(0), *listeners = PyList_New(0);
    if (waiters == NULL || listeners == NULL) {
        Py_DECREF(entries_append);
        Py_XDECREF(waiters);
        Py_XDECREF(listeners);
        return -1;
    }
    Py_XSETREF(self->entries, Py_NewRef(entries));
    Py_XSETREF(self->entries_append, entries_append);
    Py_XSETREF(self->entry_type, Py_NewRef(entry_type));
    Py_XSETREF(self->wake, Py_NewRef(wake));
    Py_XSETREF(self->ending, Py_NewRef(Py_None));
    Py_XSETREF(self->waiters, waiters);
    Py_XSETREF(self->listeners, listeners);
    Py_XSETREF(self->pending, Py_NewRef(Py_None));
    Py_XSETREF(self->tally, Py_NewRef(Py_None));
    Py_XSETREF(self->on_pending, Py_NewRef(Py_None));
    self->last_seq = 0;
    return 0;
}

static int
log_stream_traverse(LogStream *self, visitproc visit, void *arg)
{
    Py_VISIT(self->entries);
    Py_VISIT(self->entries_append);
    Py_VISIT(self->entry_type);
    Py_VISIT(self->wake);
    Py_VISIT(self->ending);
    Py_VISIT(self->waiters);
    Py_VISIT(self->listeners);
    Py_VISIT(self->pending);
    Py_VISIT(self->tally);
    Py_VISIT(self->on_pending);
    Py_VISIT(Py_TYPE(self));
    return 0;
}

static int
log_stream_clear(LogStream *self)
{
    Py_CLEAR(self->entries);
    Py_CLEAR(self->entries_append);
    Py_CLEAR(self->entry_type);
    Py_CLEAR(self->wake);
    Py_CLEAR(self->ending);
    Py_CLEAR(self->waiters);
    Py_CLEAR(self->listeners);
    Py_CLEAR(self->pending);
    Py_CLEAR(self->tally);
    Py_CLEAR(self->on_pending);
    return 0;
}

static void
log_stream_dealloc(LogStream *self)
{
    dealloc_with((PyObject *)self, (inquiry)log_stream_clear);
}

/* A new `entry_type` instance of (seq, payload), made as tuple.__new__(entry_type, ...)
 * makes it (the type's tp_alloc, the items set), without the two argument tuples that
 * going through tp_new costs: a named tuple's own __new__ is a Python function. */
static PyObject *
new_entry(PyObject *entry_type, PyObject *seq, PyObject *payload)
{
    PyTypeObject *type = (PyTypeObject *)entry_type;
    PyObject *entry = type->tp_alloc(type, 2);
    if (entry == NULL) {
        return NULL;
    }
    PyTuple_SET_ITEM(entry, 0, Py_NewRef(seq));
    PyTuple_SET_ITEM(entry, 1, Py_NewRef(payload));
    return entry;
}

/* The members are writable (the Python half of the log assigns them), so each use checks
 * what they hold: NULL after a `del`, or anything at all. */
static int
log_stream_lists_ok(LogStream *self)
{
    if (self->waiters == NULL || self->listeners == NULL || !PyList_Check(self->waiters)
        || !PyList_Check(self->listeners)) {
        PyErr_SetString(PyExc_TypeError, "a LogStream's waiters and listeners are lists");
        return 0;
    }
    return 1;
}

/* The stream's tally, or NULL for none (None), or NULL with an exception: the members are
 * writable, so each use checks what they hold. */
static Tally *
log_stream_tally(LogStream *self)
{
    PyObject *tally = self->tally;
    if (tally == NULL || tally == Py_None) {
        return NULL;
    }
    if (TALLY_TYPE == NULL || !Py_IS_TYPE(tally, (PyTypeObject *)TALLY_TYPE)) {
        PyErr_SetString(PyExc_TypeError, "a LogStream's tally is a Tally or None");
        return NULL;
    }
    return (Tally *)tally;
}

/* The stream's pending list, or NULL for none (None), or NULL with an exception. */
static PyObject *
log_stream_pending(LogStream *self)
{
    PyObject *pending = self->pending;
    if (pending == NULL || pending == Py_None) {
        return NULL;
    }
    if (!PyList_Check(pending)) {
        PyErr_SetString(PyExc_TypeError, "a LogStream's pending is a list or None");
        return NULL;
    }
    return pending;
}

/* Queue the payload in `pending` as well, if the stream has one: counted in the tally, and
 * `on_pending(stream)` told when the list was empty. 0, or -1 with an exception. The
 * members are read again here: keeping the entry may have run Python that replaced them. */
static int
log_stream_queue(LogStream *self, PyObject *payload)
{
    PyObject *pending = log_stream_pending(self);
    if (pending == NULL) {
        return PyErr_Occurred() ? -1 : 0;
    }
    int was_empty = PyList_GET_SIZE(pending) == 0;
    if (PyList_Append(pending, payload) < 0) {
        return -1;
    }
    Tally *tally = log_stream_tally(self);
    if (tally != NULL) {
        tally->count++;
    } else if (PyErr_Occurred()) {
        return -1;
    }
    PyObject *on_pending = self->on_pending;
    if (!was_empty || on_pending == NULL || on_pending == Py_None) {
        return 0;
    }
    Py_INCREF(on_pending); /* held across the call, which may replace the member */
    PyObject *told = PyObject_CallOneArg(on_pending, (PyObject *)self);
    Py_DECREF(on_pending);
    if (told == NULL) {
        return -1;
    }
    Py_DECREF(told);
    return 0;
}

static PyObject *
log_stream_append(LogStream *self, PyObject *payload)
{
    if (self->entries == NULL || self->entries_append == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "LogStream.__init__() was not called");
        return NULL;
    }
    if (self->ending != Py_None) {
        return PyObject_CallMethodNoArgs((PyObject *)self, REFUSE);
    }
    Tally *tally = log_stream_tally(self);
    if (tally == NULL && PyErr_Occurred()) {
        return NULL;
    }
    if (tally != NULL && tally->count >= tally->limit) {
        return PyObject_CallMethodNoArgs((PyObject *)self, REFUSE);
    }
    if (log_stream_pending(self) == NULL && PyErr_Occurred()) {
        return NULL; /* a wrong kind of pending: said before anything is kept */
    }
    PyObject *kept = PyObject_CallOneArg(self->entries_append, payload);
    if (kept == NULL) {
        return NULL;
    }
    Py_DECREF(kept);
    Py_ssize_t seq_value = ++self->last_seq;
    PyObject *seq = PyLong_FromSsize_t(seq_value);
    if (seq == NULL) {
        return NULL;
    }
    if (log_stream_queue(self, payload) < 0) {
        goto error;
    }
    /* The calls above may have run Python, which may have replaced the members. */
    if (!log_stream_lists_ok(self)) {
        goto error;
    }
    if (PyList_GET_SIZE(self->waiters)) {
        PyObject *woken = PyObject_CallOneArg(self->wake, self->waiters);
        if (woken == NULL) {
            goto error;
        }
        Py_DECREF(woken);
        /* `wake` ran Python, which may have replaced the members. */
        if (!log_stream_lists_ok(self)) {
            goto error;
        }
    }
    if (PyList_GET_SIZE(self->listeners)) {
        PyObject *entry = new_entry(self->entry_type, seq, payload);
        if (entry == NULL) {
            goto error;
        }
        /* Making the entry allocates, so a garbage collection may have run finalizers
         * that unsubscribed a listener or ended the stream (a new, empty list): the
         * listeners are read only now, with nothing that allocates in between. */
        if (!log_stream_lists_ok(self)) {
            Py_DECREF(entry);
            goto error;
        }
        Py_ssize_t count = PyList_GET_SIZE(self->listeners);
        if (count == 0) {
            Py_DECREF(entry);
            return seq;
        }
        /* A copy: a listener may unsubscribe, or subscribe another, meanwhile. With one
         * listener, a reference to it is enough. */
        PyObject *listeners = count == 1 ? Py_NewRef(PyList_GET_ITEM(self->listeners, 0))
                                         : PyList_AsTuple(self->listeners);
        if (listeners == NULL) {
            Py_DECREF(entry);
            goto error;
        }
        int failed = 0;
        if (count == 1) {
            PyObject *done = PyObject_CallOneArg(listeners, entry);
            failed = done == NULL;
            Py_XDECREF(done);
        } else {
            for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(listeners) && !failed; i++) {
                PyObject *done = PyObject_CallOneArg(PyTuple_GET_ITEM(listeners, i), entry);
                failed = done == NULL;
                Py_XDECREF(done);
            }
        }
        Py_DECREF(listeners);
        Py_DECREF(entry);
        if (failed) {
            goto error;
        }
    }
    return seq;
error:
    Py_DECREF(seq);
    return NULL;
}

static PyMethodDef log_stream_methods[] = {
    {"append", (PyCFunction)log_stream_append, METH_O,
     "Append a payload: keep it, count its seq, wake and tell the followers; the seq."},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef log_stream_members[] = {
    {"entries", T_OBJECT_EX, offsetof(LogStream, entries), READONLY, "The kept payloads."},
    {"ending", T_OBJECT_EX, offsetof(LogStream, ending), 0, "None while live."},
    {"waiters", T_OBJECT_EX, offsetof(LogStream, waiters), 0, "Parked followers' futures."},
    {"listeners", T_OBJECT_EX, offsetof(LogStream, listeners), 0, "Pushed followers."},
    {"last_seq", T_PYSSIZET, offsetof(LogStream, last_seq), 0, "The last seq appended."},
    {"pending", T_OBJECT_EX, offsetof(LogStream, pending), 0,
     "Payloads queued for elsewhere, or None: not queued."},
    {"tally", T_OBJECT_EX, offsetof(LogStream, tally), 0,
     "The Tally of pending payloads over all streams (refused at its limit), or None."},
    {"on_pending", T_OBJECT_EX, offsetof(LogStream, on_pending), 0,
     "Called with the stream when `pending` stops being empty, or None."},
    {NULL, 0, 0, 0, NULL},
};

static PyType_Slot log_stream_slots[] = {
    {Py_tp_doc, "A memory log stream's append (see sserelay.speedups.LogStream_py)."},
    {Py_tp_init, log_stream_init},
    {Py_tp_new, PyType_GenericNew},
    {Py_tp_traverse, log_stream_traverse},
    {Py_tp_clear, log_stream_clear},
    {Py_tp_dealloc, log_stream_dealloc},
    {Py_tp_methods, log_stream_methods},
    {Py_tp_members, log_stream_members},
    {0, NULL},
};

static PyType_Spec log_stream_spec = {
    .name = "sserelay._speedups.LogStream",
    .basicsize = sizeof(LogStream),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .slots = log_stream_slots,
};

/* speedups.CountedAppend: a pushing producer's `emit`: `append(payload)`, counted in
 * `chunks` and `size`, with the clock read into `stamps` at chunk 1 and at the pairs 8-9,
 * 16-17... (StreamMarks); the answer is the truth of what `append` returned. An exception
 * among `errors` is kept in `refused`, and from then on every call answers False. */
typedef struct {
    PyObject_HEAD
    PyObject *append;
    PyObject *errors;
    PyObject *clock;
    PyObject *stamps;
    PyObject *refused;
    Py_ssize_t chunks;
    Py_ssize_t size;
    vectorcallfunc vectorcall;
} CountedAppend;

static PyObject *
counted_append_vectorcall(PyObject *op, PyObject *const *args, size_t nargsf,
                          PyObject *kwnames)
{
    CountedAppend *self = (CountedAppend *)op;
    if (!one_positional(nargsf, kwnames, "CountedAppend")) {
        return NULL;
    }
    if (self->append == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "CountedAppend.__init__() was not called");
        return NULL;
    }
    if (self->refused != Py_None) {
        Py_RETURN_FALSE;
    }
    PyObject *payload = args[0];
    Py_ssize_t length = PyObject_Length(payload);
    if (length < 0) {
        return NULL;
    }
    PyObject *done = PyObject_CallOneArg(self->append, payload);
    if (done == NULL) {
        if (!PyErr_GivenExceptionMatches(PyErr_Occurred(), self->errors)) {
            return NULL;
        }
        PyObject *type, *value, *traceback;
        PyErr_Fetch(&type, &value, &traceback);
        PyErr_NormalizeException(&type, &value, &traceback);
        if (traceback != NULL && value != NULL) {
            PyException_SetTraceback(value, traceback);
        }
        Py_XDECREF(type);
        Py_XDECREF(traceback);
        Py_XSETREF(self->refused, value != NULL ? value : Py_NewRef(Py_None));
        Py_RETURN_FALSE;
    }
    int truth = PyObject_IsTrue(done);
    Py_DECREF(done);
    if (truth < 0) {
        return NULL;
    }
    self->chunks++;
    self->size += length;
    if ((self->chunks & 7) < 2) {
        PyObject *now = PyObject_CallNoArgs(self->clock);
        if (now == NULL) {
            return NULL;
        }
        int appended = PyList_Append(self->stamps, now);
        Py_DECREF(now);
        if (appended < 0) {
            return NULL;
        }
    }
    return PyBool_FromLong(truth);
}

static int
counted_append_init(CountedAppend *self, PyObject *args, PyObject *kwargs)
{
    PyObject *append, *errors, *clock, *stamps;
    if (!PyArg_ParseTuple(args, "OOOO!:CountedAppend", &append, &errors, &clock,
                          &PyList_Type, &stamps)) {
        return -1;
    }
    Py_XSETREF(self->append, Py_NewRef(append));
    Py_XSETREF(self->errors, Py_NewRef(errors));
    Py_XSETREF(self->clock, Py_NewRef(clock));
    Py_XSETREF(self->stamps, Py_NewRef(stamps));
    Py_XSETREF(self->refused, Py_NewRef(Py_None));
    self->chunks = self->size = 0;
    return 0;
}

static PyObject *
counted_append_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    CountedAppend *self = (CountedAppend *)PyType_GenericNew(type, args, kwargs);
    if (self != NULL) {
        self->vectorcall = counted_append_vectorcall;
    }
    return (PyObject *)self;
}

static int
counted_append_traverse(CountedAppend *self, visitproc visit, void *arg)
{
    Py_VISIT(self->append);
    Py_VISIT(self->errors);
    Py_VISIT(self->clock);
    Py_VISIT(self->stamps);
    Py_VISIT(self->refused);
    Py_VISIT(Py_TYPE(self));
    return 0;
}

static int
counted_append_clear(CountedAppend *self)
{
    Py_CLEAR(self->append);
    Py_CLEAR(self->errors);
    Py_CLEAR(self->clock);
    Py_CLEAR(self->stamps);
    Py_CLEAR(self->refused);
    return 0;
}

static void
counted_append_dealloc(CountedAppend *self)
{
    dealloc_with((PyObject *)self, (inquiry)counted_append_clear);
}

static PyMemberDef counted_append_members[] = {
    {"chunks", T_PYSSIZET, offsetof(CountedAppend, chunks), READONLY, "Payloads appended."},
    {"size", T_PYSSIZET, offsetof(CountedAppend, size), READONLY, "Their bytes."},
    {"refused", T_OBJECT, offsetof(CountedAppend, refused), READONLY,
     "The error that stopped the appends, or None."},
    {"__vectorcalloffset__", T_PYSSIZET, offsetof(CountedAppend, vectorcall), READONLY},
    {NULL, 0, 0, 0, NULL},
};

static PyType_Slot counted_append_slots[] = {
    {Py_tp_doc, "A producer's counted append (see sserelay.speedups.CountedAppend_py)."},
    {Py_tp_new, counted_append_new},
    {Py_tp_init, counted_append_init},
    {Py_tp_call, PyVectorcall_Call},
    {Py_tp_traverse, counted_append_traverse},
    {Py_tp_clear, counted_append_clear},
    {Py_tp_dealloc, counted_append_dealloc},
    {Py_tp_members, counted_append_members},
    {0, NULL},
};

static PyType_Spec counted_append_spec = {
    .name = "sserelay._speedups.CountedAppend",
    .basicsize = sizeof(CountedAppend),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .slots = counted_append_slots,
};

/* speedups.PlainPass: a pass-through's body consumer: while `stream.passes_plain`, a read
 * that is one plain event (plain_event) goes to `send` as it is, counted in
 * `stream.events`, and `blocked()` is called when `send` answers False; any other read
 * goes to `other(chunk)`. */
typedef struct {
    PyObject_HEAD
    PyObject *stream;
    PyObject *send;
    PyObject *blocked;
    PyObject *other;
    vectorcallfunc vectorcall;
} PlainPass;

static PyObject *PASSES_PLAIN, *EVENTS, *ONE;

static PyObject *
plain_pass_vectorcall(PyObject *op, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    PlainPass *self = (PlainPass *)op;
    if (!one_positional(nargsf, kwnames, "PlainPass")) {
        return NULL;
    }
    if (self->stream == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "PlainPass.__init__() was not called");
        return NULL;
    }
    PyObject *chunk = args[0];
    int plain = 0;
    if (PyBytes_Check(chunk)) {
        PyObject *passes = PyObject_GetAttr(self->stream, PASSES_PLAIN);
        if (passes == NULL) {
            return NULL;
        }
        int yes = PyObject_IsTrue(passes);
        Py_DECREF(passes);
        if (yes < 0) {
            return NULL;
        }
        plain = yes && is_plain_event(PyBytes_AS_STRING(chunk), PyBytes_GET_SIZE(chunk));
    }
    if (!plain) {
        PyObject *done = PyObject_CallOneArg(self->other, chunk);
        if (done == NULL) {
            return NULL;
        }
        Py_DECREF(done);
        Py_RETURN_NONE;
    }
    PyObject *events = PyObject_GetAttr(self->stream, EVENTS);
    if (events == NULL) {
        return NULL;
    }
    PyObject *more = PyNumber_Add(events, ONE);
    Py_DECREF(events);
    if (more == NULL) {
        return NULL;
    }
    int set = PyObject_SetAttr(self->stream, EVENTS, more);
    Py_DECREF(more);
    if (set < 0) {
        return NULL;
    }
    PyObject *sent = PyObject_CallOneArg(self->send, chunk);
    if (sent == NULL) {
        return NULL;
    }
    int taken = PyObject_IsTrue(sent);
    Py_DECREF(sent);
    if (taken < 0) {
        return NULL;
    }
    if (!taken) {
        PyObject *done = PyObject_CallNoArgs(self->blocked);
        if (done == NULL) {
            return NULL;
        }
        Py_DECREF(done);
    }
    Py_RETURN_NONE;
}

static int
plain_pass_init(PlainPass *self, PyObject *args, PyObject *kwargs)
{
    PyObject *stream, *send, *blocked, *other;
    if (!PyArg_ParseTuple(args, "OOOO:PlainPass", &stream, &send, &blocked, &other)) {
        return -1;
    }
    Py_XSETREF(self->stream, Py_NewRef(stream));
    Py_XSETREF(self->send, Py_NewRef(send));
    Py_XSETREF(self->blocked, Py_NewRef(blocked));
    Py_XSETREF(self->other, Py_NewRef(other));
    return 0;
}

static PyObject *
plain_pass_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    PlainPass *self = (PlainPass *)PyType_GenericNew(type, args, kwargs);
    if (self != NULL) {
        self->vectorcall = plain_pass_vectorcall;
    }
    return (PyObject *)self;
}

static int
plain_pass_traverse(PlainPass *self, visitproc visit, void *arg)
{
    Py_VISIT(self->stream);
    Py_VISIT(self->send);
    Py_VISIT(self->blocked);
    Py_VISIT(self->other);
    Py_VISIT(Py_TYPE(self));
    return 0;
}

static int
plain_pass_clear(PlainPass *self)
{
    Py_CLEAR(self->stream);
    Py_CLEAR(self->send);
    Py_CLEAR(self->blocked);
    Py_CLEAR(self->other);
    return 0;
}

static void
plain_pass_dealloc(PlainPass *self)
{
    dealloc_with((PyObject *)self, (inquiry)plain_pass_clear);
}

static PyMemberDef plain_pass_members[] = {
    {"__vectorcalloffset__", T_PYSSIZET, offsetof(PlainPass, vectorcall), READONLY},
    {NULL, 0, 0, 0, NULL},
};

static PyType_Slot plain_pass_slots[] = {
    {Py_tp_doc, "A pass-through's body consumer (see sserelay.speedups.PlainPass_py)."},
    {Py_tp_new, plain_pass_new},
    {Py_tp_init, plain_pass_init},
    {Py_tp_call, PyVectorcall_Call},
    {Py_tp_traverse, plain_pass_traverse},
    {Py_tp_clear, plain_pass_clear},
    {Py_tp_dealloc, plain_pass_dealloc},
    {Py_tp_members, plain_pass_members},
    {0, NULL},
};

static PyType_Spec plain_pass_spec = {
    .name = "sserelay._speedups.PlainPass",
    .basicsize = sizeof(PlainPass),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .slots = plain_pass_slots,
};

static int
add_type(PyObject *module, PyType_Spec *spec, const char *name)
{
    PyObject *type = PyType_FromModuleAndSpec(module, spec, NULL);
    if (type == NULL) {
        return -1;
    }
    int added = PyModule_AddObjectRef(module, name, type);
    if (added == 0 && spec == &tally_spec) {
        Py_XSETREF(TALLY_TYPE, Py_NewRef(type));
    }
    Py_DECREF(type);
    return added;
}

static int
speedups_exec(PyObject *module)
{
    struct {
        PyObject **name;
        const char *text;
    } names[] = {{&DISCONNECTED, "disconnected"}, {&WRITE_PAUSED, "write_paused"},
                 {&TRANSPORT, "transport"},       {&FLOW, "flow"},
                 {&WRITE, "write"},               {&DONE, "done"},
                 {&SET_RESULT, "set_result"},     {&ON_OTHER, "on_other"},
                 {&APPEND, "append"},             {&APPEND_LEARNING, "_append_learning"},
                 {&REFUSE, "_refuse"},            {&PASSES_PLAIN, "passes_plain"},
                 {&EVENTS, "events"}};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (*names[i].name == NULL && (*names[i].name = PyUnicode_InternFromString(names[i].text)) == NULL) {
            return -1;
        }
    }
    if (ONE == NULL && (ONE = PyLong_FromLong(1)) == NULL) {
        return -1;
    }
    if (add_type(module, &chunk_writer_spec, "ChunkWriter") < 0
        || add_type(module, &forward_spec, "Forward") < 0
        || add_type(module, &entry_tail_spec, "EntryTail") < 0
        || add_type(module, &retained_spec, "Retained") < 0
        || add_type(module, &template_text_spec, "TemplateText") < 0
        || add_type(module, &decoder_state_spec, "DecoderState") < 0
        || add_type(module, &log_stream_spec, "LogStream") < 0
        || add_type(module, &tally_spec, "Tally") < 0
        || add_type(module, &counted_append_spec, "CountedAppend") < 0
        || add_type(module, &plain_pass_spec, "PlainPass") < 0) {
        return -1;
    }
    return add_type(module, &guarded_spec, "Guarded");
}

static PyModuleDef_Slot speedups_slots[] = {
    {Py_mod_exec, speedups_exec},
    {0, NULL},
};

static PyMethodDef speedups_methods[] = {
    {"plain_event", speedups_plain_event, METH_O,
     "Whether a read is one plain `data: {...}` event that the pass-through may forward as "
     "it is (see sserelay.speedups)."},
    {"usage_present", speedups_usage_present, METH_O,
     "Whether `\"usage\"` occurs with a value other than null (see sserelay.speedups)."},
    {"http_chunk", speedups_http_chunk, METH_O,
     "`data` framed as one piece of a chunked HTTP/1.1 body (see sserelay.speedups)."},
    {"http_entry", (PyCFunction)(void (*)(void))speedups_http_entry, METH_FASTCALL,
     "A log entry's event (`prefix`, seq, LF, payload) as one HTTP chunk (see "
     "sserelay.speedups)."},
    {"between", (PyCFunction)(void (*)(void))speedups_between, METH_FASTCALL,
     "`payload` without `prefix` and `suffix`, or None (see sserelay.speedups)."},
    {"resp_command", speedups_resp_command, METH_O,
     "A command (a tuple of bytes, str and int) in Redis' protocol (see sserelay.speedups)."},
    {"one_data_line", speedups_one_data_line, METH_O,
     "The value of a read that is exactly one `data: ` line and a blank line, or None (see "
     "sserelay.speedups)."},
    {"plain_ascii_text", speedups_plain_ascii_text, METH_O,
     "Whether bytes are printable ASCII with no quote or backslash (see sserelay.speedups)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef speedups_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "sserelay._speedups",
    .m_doc = "The relay's per-chunk byte checks and framing in C (see sserelay.speedups).",
    .m_size = 0,
    .m_methods = speedups_methods,
    .m_slots = speedups_slots,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    return PyModuleDef_Init(&speedups_module);
}
