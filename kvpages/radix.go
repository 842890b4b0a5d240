package kvpages

import (
	"math"
	"slices"
)

// metricKey maps a float32 to a uint32 whose unsigned order is the float order (-0 and +0 equal), so
// slot ranks can be sorted as integers. NaN never reaches here (checkSlots rejects it).
func metricKey(f float32) uint32 {
	if f == 0 {
		f = 0 // -0 -> +0
	}
	u := math.Float32bits(f)
	if u>>31 != 0 {
		return ^u
	}
	return u | 1<<31
}

// keyMetric inverts metricKey (for block scores in plans and tests).
func keyMetric(k uint32) float32 {
	if k>>31 != 0 {
		return math.Float32frombits(k &^ (1 << 31))
	}
	return math.Float32frombits(^k)
}

// sortRanks sorts a (entries key<<32 | logical index) ascending, i.e. by (key, index), using tmp (same
// length) as scratch; it returns whichever of a and tmp holds the result. LSD radix on the key's four
// bytes, skipping bytes every entry shares; small inputs use pdqsort.
func sortRanks(a, tmp []uint64) []uint64 {
	if len(a) < 256 {
		slices.Sort(a)
		return a
	}
	var cnt [4][256]int
	for _, v := range a {
		k := uint32(v >> 32)
		cnt[0][k&255]++
		cnt[1][k>>8&255]++
		cnt[2][k>>16&255]++
		cnt[3][k>>24]++
	}
	src, dst := a, tmp[:len(a)]
	for p := range 4 {
		c := &cnt[p]
		shift := 32 + 8*uint(p)
		if c[byte(src[0]>>shift)] == len(src) {
			continue // every key has this byte: the pass would not move anything
		}
		sum := 0
		for i, n := range c {
			c[i] = sum
			sum += n
		}
		for _, v := range src {
			d := byte(v >> shift)
			dst[c[d]] = v
			c[d]++
		}
		src, dst = dst, src
	}
	return src
}
