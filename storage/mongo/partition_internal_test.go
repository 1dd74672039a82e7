package mongo

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/mongo"
)

func ms(s string) int64 {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t.UnixMilli()
}

func TestPeriodOf(t *testing.T) {
	tests := []struct {
		period     Period
		at         int64
		name       string
		start, end int64
	}{
		{PeriodMonth, ms("2024-01-31T23:59:59.999Z"), "box_202401", ms("2024-01-01T00:00:00Z"), ms("2024-02-01T00:00:00Z")},
		{PeriodMonth, ms("2024-02-01T00:00:00Z"), "box_202402", ms("2024-02-01T00:00:00Z"), ms("2024-03-01T00:00:00Z")},
		{PeriodMonth, ms("2024-12-31T23:59:59.999Z"), "box_202412", ms("2024-12-01T00:00:00Z"), ms("2025-01-01T00:00:00Z")},
		{PeriodMonth, 0, "box_197001", ms("1970-01-01T00:00:00Z"), ms("1970-02-01T00:00:00Z")},
		{PeriodMonth, -5, "box_197001", ms("1970-01-01T00:00:00Z"), ms("1970-02-01T00:00:00Z")},
		{PeriodMonth, 1 << 62, "box_999912", ms("9999-12-01T00:00:00Z"), maxSendTime + 1},
		{PeriodDay, ms("2024-02-29T23:59:59.999Z"), "box_20240229", ms("2024-02-29T00:00:00Z"), ms("2024-03-01T00:00:00Z")},
		{PeriodDay, ms("2024-03-01T00:00:00Z"), "box_20240301", ms("2024-03-01T00:00:00Z"), ms("2024-03-02T00:00:00Z")},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%v/%s", tc.period, tc.name), func(t *testing.T) {
			p := periodOf("box", tc.period, tc.at)
			if p.name != tc.name || p.start != tc.start || p.end != tc.end || p.base {
				t.Fatalf("periodOf = %+v, want %s [%d, %d)", p, tc.name, tc.start, tc.end)
			}
			back, ok := parsePartition("box", p.name)
			if !ok || back != p {
				t.Fatalf("parsePartition(%s) = %+v, %v; want %+v", p.name, back, ok, p)
			}
		})
	}
}

func TestParsePartition(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
		base bool
	}{
		{"box", true, true},
		{"box_202401", true, false},
		{"box_20240131", true, false},
		{"box_2024", false, false},
		{"box_202413", false, false},
		{"box_202400", false, false},
		{"box_20240230", false, false},
		{"box_2024010", false, false},
		{"box_+20401", false, false},
		{"box_-20401", false, false},
		{"box_x02401", false, false},
		{"box2_202401", false, false},
		{"other_202401", false, false},
		{"box_202401_x", false, false},
		{"boxes", false, false},
	}
	for _, tc := range tests {
		p, ok := parsePartition("box", tc.name)
		if ok != tc.ok || p.base != tc.base {
			t.Errorf("parsePartition(%q) = %+v, %v; want ok %v base %v", tc.name, p, ok, tc.ok, tc.base)
		}
	}
}

func TestSortPartitions(t *testing.T) {
	var parts []partition
	for _, n := range []string{"box_20240201", "box_202402", "box", "box_202401", "box_20240131"} {
		p, ok := parsePartition("box", n)
		if !ok {
			t.Fatalf("parse %s", n)
		}
		parts = append(parts, p)
	}
	sortPartitions(parts)
	var got []string
	for _, p := range parts {
		got = append(got, p.name)
	}
	want := []string{"box", "box_202401", "box_20240131", "box_202402", "box_20240201"}
	if !slices.Equal(got, want) {
		t.Fatalf("order %v, want %v", got, want)
	}
}

func TestParsePeriod(t *testing.T) {
	tests := []struct {
		in      string
		want    Period
		wantErr bool
	}{
		{"", PeriodMonth, false},
		{"month", PeriodMonth, false},
		{" Day ", PeriodDay, false},
		{"daily", PeriodDay, false},
		{"week", 0, true},
	}
	for _, tc := range tests {
		got, err := ParsePeriod(tc.in)
		if (err != nil) != tc.wantErr || (err == nil && got != tc.want) {
			t.Errorf("ParsePeriod(%q) = %v, %v", tc.in, got, err)
		}
	}
}

func TestOnlyDuplicates(t *testing.T) {
	dup := mongo.BulkWriteError{WriteError: mongo.WriteError{Code: 11000, Message: "E11000 duplicate key"}}
	other := mongo.BulkWriteError{WriteError: mongo.WriteError{Code: 2, Message: "bad value"}}
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"all duplicates", mongo.BulkWriteException{WriteErrors: []mongo.BulkWriteError{dup, dup}}, true},
		{"wrapped", fmt.Errorf("x: %w", mongo.BulkWriteException{WriteErrors: []mongo.BulkWriteError{dup}}), true},
		{"one other", mongo.BulkWriteException{WriteErrors: []mongo.BulkWriteError{dup, other}}, false},
		{"write concern", mongo.BulkWriteException{WriteErrors: []mongo.BulkWriteError{dup},
			WriteConcernError: &mongo.WriteConcernError{Code: 64}}, false},
		{"no write errors", mongo.BulkWriteException{}, false},
		{"not a bulk error", errors.New("connection reset"), false},
	}
	for _, tc := range tests {
		if got := onlyDuplicates(tc.err); got != tc.want {
			t.Errorf("%s: onlyDuplicates = %v, want %v", tc.name, got, tc.want)
		}
	}
}
