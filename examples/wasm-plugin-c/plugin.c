/*
 * A Waygate WASM tool plugin in C, built with clang + wasi-libc (see README.md).
 *
 * Tools: word_count and shout (useful), clock (shows the wall clock is hidden unless
 * granted), read_file (works only inside a directory granted with fs_read), and spin /
 * grab, which misbehave on purpose so you can watch the sandbox stop them.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define EXPORT(name) __attribute__((export_name(name)))
#define IMPORT(mod, name) __attribute__((import_module(mod), import_name(name)))

/* Host function: write a line to Waygate's log (0 error .. 4 trace). */
IMPORT("waygate", "log") void waygate_log(int level, const char *msg, int len);

/* ---- the ABI: buffers, and answers packed as (pointer << 32) | length ---- */

EXPORT("waygate_alloc") void *wg_alloc(int len) { return malloc(len > 0 ? (size_t)len : 1); }

/* The host frees the request buffer and the answer buffer with this after each call. */
EXPORT("waygate_free") void wg_free(void *ptr, int len) { (void)len; free(ptr); }

typedef struct { char *p; size_t n, cap; } buf;

static void put(buf *b, const char *s, size_t len) {
    if (b->n + len + 1 > b->cap) {
        size_t cap = (b->cap ? b->cap * 2 : 256);
        while (cap < b->n + len + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) return; /* out of memory: the answer is cut, never overflowed */
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, len);
    b->n += len;
    b->p[b->n] = 0;
}
static void puts_(buf *b, const char *s) { put(b, s, strlen(s)); }

/* Append s as a JSON string literal. */
static void put_json_string(buf *b, const char *s) {
    puts_(b, "\"");
    for (; *s; s++) {
        char esc[8];
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') { esc[0] = '\\'; esc[1] = (char)c; put(b, esc, 2); }
        else if (c == '\n') puts_(b, "\\n");
        else if (c < 0x20) { snprintf(esc, sizeof esc, "\\u%04x", c); puts_(b, esc); }
        else put(b, (const char *)&c, 1);
    }
    puts_(b, "\"");
}

static uint64_t pack(buf *b) { return ((uint64_t)(uintptr_t)b->p << 32) | (uint64_t)b->n; }

static uint64_t text_answer(const char *text) {
    buf b = {0};
    puts_(&b, "{\"text\":");
    put_json_string(&b, text);
    puts_(&b, "}");
    return pack(&b);
}

static uint64_t error_answer(const char *msg) {
    buf b = {0};
    puts_(&b, "{\"error\":");
    put_json_string(&b, msg);
    puts_(&b, "}");
    return pack(&b);
}

/*
 * A deliberately small JSON reader: the string value of "key" found after `from`.
 * Waygate sends {"kind":…,"name":…,"arguments":{…}} in that order, so looking for a
 * key after "arguments" finds the argument. Real plugins may prefer a JSON library.
 */
static char *json_string_after(const char *json, const char *from, const char *key) {
    const char *start = from ? strstr(json, from) : json;
    if (!start) return NULL;
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\"", key);
    const char *k = strstr(start, pat);
    if (!k) return NULL;
    const char *p = k + strlen(pat);
    while (*p == ' ' || *p == ':') p++;
    if (*p != '"') return NULL;
    p++;
    char *out = malloc(strlen(p) + 1), *o = out;
    if (!out) return NULL;
    while (*p && *p != '"') {
        if (*p == '\\' && p[1]) {
            p++;
            switch (*p) {
                case 'n': *o++ = '\n'; break;
                case 't': *o++ = '\t'; break;
                case 'u': *o++ = '?'; p += 4; break; /* keep it simple */
                default: *o++ = *p;
            }
            p++;
        } else {
            *o++ = *p++;
        }
    }
    *o = 0;
    return out;
}

static const char MANIFEST[] =
    "{\"version\":\"1.0.0\",\"tools\":["
    "{\"name\":\"word_count\",\"description\":\"Counts the words in a text.\","
    "\"inputSchema\":{\"type\":\"object\",\"properties\":{\"text\":{\"type\":\"string\"}},\"required\":[\"text\"]}},"
    "{\"name\":\"shout\",\"description\":\"Upper-cases a text.\","
    "\"inputSchema\":{\"type\":\"object\",\"properties\":{\"text\":{\"type\":\"string\"}},\"required\":[\"text\"]}},"
    "{\"name\":\"clock\",\"description\":\"The guest's view of the wall clock (0 unless wall_clock is granted).\","
    "\"inputSchema\":{\"type\":\"object\"}},"
    "{\"name\":\"read_file\",\"description\":\"Reads a file; works only inside a directory granted with fs_read.\","
    "\"inputSchema\":{\"type\":\"object\",\"properties\":{\"path\":{\"type\":\"string\"}},\"required\":[\"path\"]}},"
    "{\"name\":\"spin\",\"description\":\"Loops forever (the time limit stops it).\",\"inputSchema\":{\"type\":\"object\"}},"
    "{\"name\":\"grab\",\"description\":\"Allocates memory until it fails (the memory cap stops it).\",\"inputSchema\":{\"type\":\"object\"}}"
    "]}";

/* Called once per instance with {"plugin": NAME, "settings": {…}}; answers the manifest. */
EXPORT("waygate_init") uint64_t wg_init(char *req, int len) {
    (void)req; (void)len;
    const char hello[] = "C example plugin initialized";
    waygate_log(2, hello, (int)sizeof hello - 1);
    buf b = {0};
    put(&b, MANIFEST, sizeof MANIFEST - 1);
    return pack(&b);
}

EXPORT("waygate_call") uint64_t wg_call(char *req, int len) {
    /* The request is not NUL-terminated: copy it into a string. */
    char *json = malloc((size_t)len + 1);
    if (!json) return error_answer("out of memory");
    memcpy(json, req, (size_t)len);
    json[len] = 0;
    char *name = json_string_after(json, NULL, "name");
    uint64_t out;
    if (!name) {
        out = error_answer("request has no tool name");
    } else if (!strcmp(name, "word_count") || !strcmp(name, "shout")) {
        char *text = json_string_after(json, "\"arguments\"", "text");
        if (!text) {
            out = error_answer("missing string argument \"text\"");
        } else if (!strcmp(name, "shout")) {
            for (char *c = text; *c; c++) if (*c >= 'a' && *c <= 'z') *c -= 32;
            out = text_answer(text);
        } else {
            int words = 0, in = 0;
            for (char *c = text; *c; c++) {
                int space = (*c == ' ' || *c == '\n' || *c == '\t');
                if (!space && !in) words++;
                in = !space;
            }
            char msg[64];
            snprintf(msg, sizeof msg, "%d words", words);
            out = text_answer(msg);
        }
        free(text);
    } else if (!strcmp(name, "clock")) {
        char msg[64];
        snprintf(msg, sizeof msg, "unix time seen by the plugin: %lld", (long long)time(NULL));
        out = text_answer(msg);
    } else if (!strcmp(name, "read_file")) {
        char *path = json_string_after(json, "\"arguments\"", "path");
        FILE *f = path ? fopen(path, "r") : NULL;
        if (!path) {
            out = error_answer("missing string argument \"path\"");
        } else if (!f) {
            char msg[256];
            snprintf(msg, sizeof msg, "cannot open %s: %s", path, strerror(errno));
            out = error_answer(msg);
        } else {
            char data[4096];
            size_t n = fread(data, 1, sizeof data - 1, f);
            data[n] = 0;
            fclose(f);
            out = text_answer(data);
        }
        free(path);
    } else if (!strcmp(name, "spin")) {
        volatile unsigned long i = 0;
        for (;;) i++;
    } else if (!strcmp(name, "grab")) {
        /* Published through a volatile pointer, or the compiler may drop the mallocs. */
        static char *volatile keep;
        for (;;) {
            char *p = malloc(1 << 20);
            if (!p) break;
            memset(p, 1, 1 << 20);
            keep = p;
        }
        (void)keep;
        out = error_answer("malloc failed before the cap (unexpected)");
    } else {
        out = error_answer("unknown tool");
    }
    free(name);
    free(json);
    return out;
}
