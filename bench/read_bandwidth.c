/* read_bandwidth.c: the memory-bandwidth bound of a scan: read n 64-bit words and sum them. */
#include <stddef.h>
#include <stdint.h>

uint64_t	read_words(const uint64_t *p, size_t n);

/* Sum n words with four independent accumulators (the compiler vectorises this loop). */
uint64_t
read_words(const uint64_t *p, size_t n)
{
	uint64_t	a = 0,
				b = 0,
				c = 0,
				d = 0;
	size_t		i = 0;

	for (; i + 4 <= n; i += 4)
	{
		a += p[i];
		b += p[i + 1];
		c += p[i + 2];
		d += p[i + 3];
	}
	for (; i < n; i++)
		a += p[i];
	return a + b + c + d;
}
