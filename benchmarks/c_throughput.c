/* Throughput of an exported integer-only predict function, driven by
 * benchmarks/export_throughput.py (a plain model) and benchmarks/c_folded_throughput.py:
 *   gcc -std=c99 -O2 -DMODEL_HEADER='"<prefix>.h"' -DPREDICT=<prefix>_predict \
 *       -DN_FEATURES=<n> [-DN_CATEGORICAL=<k>] c_throughput.c -o c_throughput
 *   ./c_throughput rows.f64 <rows> <repeats> predictions.f64 [codes.i32]
 * rows.f64 holds <rows> rows of N_FEATURES native doubles (the numeric inputs); with
 * N_CATEGORICAL, codes.i32 holds <rows> rows of N_CATEGORICAL native ints (the categorical
 * inputs' codes) and PREDICT takes both. Prints the best of <repeats> passes in rows per second
 * and writes the predictions (for the caller to check bit for bit).
 */
#define _POSIX_C_SOURCE 199309L
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include MODEL_HEADER

#ifdef N_CATEGORICAL
#define ARGUMENTS 6
#define ROW(i) x + (i) * N_FEATURES, codes + (i) * N_CATEGORICAL
#else
#define ARGUMENTS 5
#define ROW(i) x + (i) * N_FEATURES
#endif

static double seconds(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)now.tv_sec + (double)now.tv_nsec * 1e-9;
}

/* Reads count items of size bytes from path into a new buffer; NULL if it cannot. */
static void *read_file(const char *path, size_t size, size_t count)
{
    FILE *file = fopen(path, "rb");
    void *data = malloc(size * count);
    if (file == NULL || data == NULL || fread(data, size, count, file) != count) {
        fprintf(stderr, "cannot read %lu items from %s\n", (unsigned long)count, path);
        exit(1);
    }
    fclose(file);
    return data;
}

int main(int argc, char **argv)
{
    FILE *file;
    double *x, *y, best = 1e300;
    long rows, i;
    int repeats, r;
#ifdef N_CATEGORICAL
    int *codes;
#endif
    if (argc != ARGUMENTS) {
        fprintf(stderr, "usage: %s rows.f64 ROWS REPEATS predictions.f64%s\n", argv[0],
                ARGUMENTS == 6 ? " codes.i32" : "");
        return 2;
    }
    rows = atol(argv[2]);
    repeats = atoi(argv[3]);
    x = read_file(argv[1], sizeof *x, (size_t)rows * N_FEATURES);
#ifdef N_CATEGORICAL
    codes = read_file(argv[5], sizeof *codes, (size_t)rows * N_CATEGORICAL);
#endif
    y = malloc((size_t)rows * sizeof *y);
    if (y == NULL) {
        return 1;
    }
    for (r = 0; r < repeats; ++r) {
        double start = seconds(), elapsed;
        for (i = 0; i < rows; ++i) {
            y[i] = PREDICT(ROW(i));
        }
        elapsed = seconds() - start;
        if (elapsed < best) {
            best = elapsed;
        }
    }
    file = fopen(argv[4], "wb");
    if (file == NULL || fwrite(y, sizeof *y, (size_t)rows, file) != (size_t)rows) {
        fprintf(stderr, "cannot write %s\n", argv[4]);
        return 1;
    }
    fclose(file);
    printf("%.0f\n", (double)rows / best);
    free(x);
    free(y);
#ifdef N_CATEGORICAL
    free(codes);
#endif
    return 0;
}
