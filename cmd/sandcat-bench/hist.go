package main

import (
	"math"
	"math/bits"
	"sort"
)

// Hist is a log-linear latency histogram in microseconds: 64 sub-buckets per
// power of two, so a recorded value is kept within 1.6 % of its size. Hists
// from several worker processes merge by adding counts; the JSON form is
// sparse.
type Hist struct {
	Counts map[int]int64 `json:"counts"` // bucket index → count
	N      int64         `json:"n"`
	Sum    int64         `json:"sum_us"`
	Max    int64         `json:"max_us"`
}

const histSubBits = 6

func histBucket(v int64) int {
	if v < 0 {
		v = 0
	}
	if v < 1<<histSubBits {
		return int(v)
	}
	l := bits.Len64(uint64(v)) // > histSubBits
	shift := l - histSubBits - 1
	return (l-histSubBits)<<histSubBits + int(v>>shift) - 1<<histSubBits
}

// histValue is the middle of bucket i.
func histValue(i int) int64 {
	if i < 1<<histSubBits {
		return int64(i)
	}
	l := i>>histSubBits + histSubBits
	shift := l - histSubBits - 1
	lo := int64(i-(l-histSubBits)<<histSubBits+1<<histSubBits) << shift
	return lo + (int64(1)<<shift)/2
}

// histArr is the dense, lock-free-per-owner form used while recording.
type histArr struct {
	c   [64 * 48]int64
	n   int64
	sum int64
	max int64
}

func (h *histArr) record(us int64) {
	if us < 0 {
		us = 0
	}
	i := histBucket(us)
	if i >= len(h.c) {
		i = len(h.c) - 1
	}
	h.c[i]++
	h.n++
	h.sum += us
	if us > h.max {
		h.max = us
	}
}

func (h *histArr) add(o *histArr) {
	for j, c := range o.c {
		h.c[j] += c
	}
	h.n += o.n
	h.sum += o.sum
	h.max = max(h.max, o.max)
}

func (h *histArr) export() Hist {
	out := Hist{Counts: map[int]int64{}, N: h.n, Sum: h.sum, Max: h.max}
	for i, c := range h.c {
		if c != 0 {
			out.Counts[i] = c
		}
	}
	return out
}

// Merge adds o into h.
func (h *Hist) Merge(o Hist) {
	if h.Counts == nil {
		h.Counts = map[int]int64{}
	}
	for i, c := range o.Counts {
		h.Counts[i] += c
	}
	h.N += o.N
	h.Sum += o.Sum
	h.Max = max(h.Max, o.Max)
}

// Quantile returns the q-quantile (0 < q ≤ 1) in microseconds; the maximum
// is exact.
func (h *Hist) Quantile(q float64) int64 {
	if h.N == 0 {
		return 0
	}
	if q >= 1 {
		return h.Max
	}
	idx := make([]int, 0, len(h.Counts))
	for i := range h.Counts {
		idx = append(idx, i)
	}
	sort.Ints(idx)
	rank := int64(math.Ceil(q * float64(h.N)))
	var seen int64
	for _, i := range idx {
		seen += h.Counts[i]
		if seen >= rank {
			return min(histValue(i), h.Max)
		}
	}
	return h.Max
}

// Mean is the average in microseconds.
func (h *Hist) Mean() float64 {
	if h.N == 0 {
		return 0
	}
	return float64(h.Sum) / float64(h.N)
}
