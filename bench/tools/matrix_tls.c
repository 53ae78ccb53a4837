/* TLS connection-rate load for bench/matrix.sh (the C twin of matrix_tls.py, ~3x less
 * client CPU per connection, so the proxy rather than the client sets the pace where it
 * can). PROCS client processes each open one TLS connection after another to
 * 127.0.0.1:PORT for SECONDS, send one request on it (`GET PATH HTTP/1.1`,
 * `Connection: close`), read the answer to EOF and close. The handshake is FULL (no
 * session offered) in mode `new`; in mode `resume` each process makes one full handshake
 * first (not counted), then offers on every connection the newest session the server gave
 * it (TLS 1.3 tickets may be single-use, as rustls' are, so the one each connection
 * brings is the one the next offers). Every counted connection is checked:
 * SSL_session_reused() says whether it resumed, the status line must be 2xx, and the
 * negotiated version must be the one asked for. No certificate verification (the
 * handshake signature is still checked).
 *
 *   cc -O2 -o matrix_tls matrix_tls.c -lssl -lcrypto
 *   matrix_tls PORT SECONDS new|resume 1.2|1.3 [PROCS] [HOST] [PATH]
 *
 * Prints one line of KEY=VALUE, as matrix_tls.py: conns (counted), secs, rate (conns/s),
 * resumed, full, ok (2xx), bad (other status), errors (failed connections), wrongversion,
 * version, cipher, and first_error when there was one.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static SSL_SESSION *latest;

static int new_session(SSL *ssl, SSL_SESSION *sess) {
    (void)ssl;
    if (latest) SSL_SESSION_free(latest);
    latest = sess;
    return 1; /* we keep the reference */
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

struct stats {
    long conns, resumed, full, ok, bad, errors, wrongversion;
    double secs;
    char cipher[64], first_error[128];
};

/* One connection. 0: done (fields set), -1: failed (first_error set). */
static int one(SSL_CTX *ctx, int port, const char *host, const char *req, SSL_SESSION *offer,
               int *reused, int *status, int *version, struct stats *st) {
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1, ret = -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    SSL *ssl = NULL;
    char buf[65536], head[16] = {0};
    size_t got = 0;
    const char *what = "connect";
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0) { what = "socket"; goto out; }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) goto out;
    ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd);
    SSL_set_tlsext_host_name(ssl, host);
    if (offer) SSL_set_session(ssl, offer);
    what = "handshake";
    if (SSL_connect(ssl) != 1) goto out;
    what = "write";
    if (SSL_write(ssl, req, (int)strlen(req)) <= 0) goto out;
    what = "read";
    for (;;) {
        int n = SSL_read(ssl, buf, sizeof buf);
        if (n <= 0) {
            int e = SSL_get_error(ssl, n);
            if (e == SSL_ERROR_ZERO_RETURN || (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0)) break;
            goto out;
        }
        if (got < sizeof head - 1) {
            size_t k = sizeof head - 1 - got < (size_t)n ? sizeof head - 1 - got : (size_t)n;
            memcpy(head + got, buf, k);
        }
        got += n;
    }
    what = "short answer";
    if (got < 12 || strncmp(head, "HTTP/1.", 7) != 0) goto out;
    *status = atoi(head + 9);
    *reused = SSL_session_reused(ssl);
    *version = SSL_version(ssl);
    if (!st->cipher[0]) snprintf(st->cipher, sizeof st->cipher, "%s", SSL_get_cipher_name(ssl));
    ret = 0;
out:
    if (ret && !st->first_error[0]) {
        unsigned long e = ERR_peek_error();
        snprintf(st->first_error, sizeof st->first_error, "%s:%s", what,
                 e ? ERR_reason_error_string(e) : strerror(errno));
        for (char *p = st->first_error; *p; p++) if (*p == ' ') *p = '_';
    }
    ERR_clear_error();
    if (ssl) {
        /* The server closed cleanly after its answer: mark the connection shut down so
         * that SSL_free keeps its session resumable (else OpenSSL marks it bad). */
        if (ret == 0) {
            SSL_SESSION *s;
            SSL_set_shutdown(ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
            /* The session as it stands after the answer (with the newest ticket), as
             * Python's `SSLSocket.session` gives it: the new-session callback's copy of
             * a TLS 1.2 session whose ticket was renewed on resumption does not resume. */
            if ((s = SSL_get1_session(ssl))) {
                if (latest) SSL_SESSION_free(latest);
                latest = s;
            }
        }
        SSL_free(ssl);
    }
    if (fd >= 0) close(fd);
    return ret;
}

static void worker(int port, double seconds, int resume, int v, const char *host,
                   const char *path, int out) {
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    char req[512];
    struct stats st;
    int reused, status, version;
    memset(&st, 0, sizeof st);
    SSL_CTX_set_min_proto_version(ctx, v);
    SSL_CTX_set_max_proto_version(ctx, v);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(ctx, new_session);
    snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", path, host);
    if (resume) one(ctx, port, host, req, NULL, &reused, &status, &version, &st);
    double t0 = now(), deadline = t0 + seconds;
    while (now() < deadline) {
        if (one(ctx, port, host, req, resume ? latest : NULL, &reused, &status, &version, &st)) {
            st.errors++;
            continue;
        }
        st.conns++;
        if (reused) st.resumed++; else st.full++;
        if (status >= 200 && status < 300) st.ok++; else st.bad++;
        if (version != v) st.wrongversion++;
    }
    st.secs = now() - t0;
    if (write(out, &st, sizeof st) != sizeof st) _exit(1);
}

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: matrix_tls PORT SECONDS new|resume 1.2|1.3 [PROCS] [HOST] [PATH]\n");
        return 2;
    }
    int port = atoi(argv[1]), resume = strcmp(argv[3], "resume") == 0;
    double seconds = atof(argv[2]);
    int v = strcmp(argv[4], "1.3") == 0 ? TLS1_3_VERSION : TLS1_2_VERSION;
    int procs = argc > 5 ? atoi(argv[5]) : 4;
    const char *host = argc > 6 ? argv[6] : "bench.example.com";
    const char *path = argc > 7 ? argv[7] : "/";
    int fds[2];
    signal(SIGPIPE, SIG_IGN);
    if (pipe(fds)) return 1;
    for (int i = 0; i < procs; i++) {
        if (fork() == 0) {
            close(fds[0]);
            worker(port, seconds, resume, v, host, path, fds[1]);
            _exit(0);
        }
    }
    close(fds[1]);
    struct stats tot, st;
    memset(&tot, 0, sizeof tot);
    while (read(fds[0], &st, sizeof st) == sizeof st) {
        tot.conns += st.conns; tot.resumed += st.resumed; tot.full += st.full;
        tot.ok += st.ok; tot.bad += st.bad; tot.errors += st.errors;
        tot.wrongversion += st.wrongversion;
        if (st.secs > tot.secs) tot.secs = st.secs;
        if (!tot.cipher[0]) memcpy(tot.cipher, st.cipher, sizeof st.cipher);
        if (!tot.first_error[0]) memcpy(tot.first_error, st.first_error, sizeof st.first_error);
    }
    while (wait(NULL) > 0) {}
    printf("conns=%ld resumed=%ld full=%ld ok=%ld bad=%ld errors=%ld wrongversion=%ld "
           "secs=%.2f rate=%.1f version=%s cipher=%s",
           tot.conns, tot.resumed, tot.full, tot.ok, tot.bad, tot.errors, tot.wrongversion,
           tot.secs, tot.secs > 0 ? tot.conns / tot.secs : 0.0, v == TLS1_3_VERSION ? "TLSv1.3" : "TLSv1.2",
           tot.cipher[0] ? tot.cipher : "-");
    if (tot.first_error[0]) printf(" first_error=%s", tot.first_error);
    printf("\n");
    return 0;
}
