/* Throughput of an exported integer-only predict function, driven by
 * benchmarks/export_throughput.py:
 *   gcc -std=c99 -O2 -DMODEL_HEADER='"<prefix>.h"' -DPREDICT=<prefix>_predict \
 *       -DN_FEATURES=<n> c_throughput.c -o c_throughput
 *   ./c_throughput rows.f64 <rows> <repeats> predictions.f64
 * rows.f64 holds <rows> rows of N_FEATURES native doubles. Prints the best of <repeats> passes
 * in rows per second and writes the predictions (for the caller to check bit for bit).
 */
#define _POSIX_C_SOURCE 199309L
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include MODEL_HEADER

static double seconds(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)now.tv_sec + (double)now.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
    FILE *file;
    double *x, *y, best = 1e300;
    long rows, i;
    int repeats, r;
    if (argc != 5) {
        fprintf(stderr, "usage: %s rows.f64 ROWS REPEATS predictions.f64\n", argv[0]);
        return 2;
    }
    rows = atol(argv[2]);
    repeats = atoi(argv[3]);
    x = malloc((size_t)rows * N_FEATURES * sizeof *x);
    y = malloc((size_t)rows * sizeof *y);
    file = fopen(argv[1], "rb");
    if (x == NULL || y == NULL || file == NULL
        || fread(x, sizeof *x, (size_t)rows * N_FEATURES, file) != (size_t)rows * N_FEATURES) {
        fprintf(stderr, "cannot read %ld rows from %s\n", rows, argv[1]);
        return 1;
    }
    fclose(file);
    for (r = 0; r < repeats; ++r) {
        double start = seconds(), elapsed;
        for (i = 0; i < rows; ++i) {
            y[i] = PREDICT(x + i * N_FEATURES);
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
    return 0;
}
