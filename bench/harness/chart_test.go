package harness

import (
	"encoding/xml"
	"errors"
	"io"
	"math"
	"strings"
	"testing"
)

func TestBarChartSVG(t *testing.T) {
	nan := math.NaN()
	tests := []struct {
		name    string
		chart   BarChart
		want    []string // substrings of the SVG
		wantErr string
	}{
		{
			name: "two series",
			chart: BarChart{Title: "ops/s", YLabel: "ops/s", Categories: []string{"SET", "GET"},
				Series: []BarSeries{{Name: "redis", Values: []float64{100, 200}}, {Name: "ringcache", Values: []float64{50, 150}}}},
			want: []string{"<svg", "ops/s", "SET", "GET", "redis", "ringcache"},
		},
		{
			name: "ratio with error bars, reference line and a missing value",
			chart: BarChart{Title: "ratio", Categories: []string{"SET\nP1", "GET\nP1"}, RefLine: 1,
				Series: []BarSeries{{Values: []float64{0.5, nan}, Lo: []float64{0.4, nan}, Hi: []float64{0.6, nan}}}},
			want: []string{"<svg", "ratio", "P1"},
		},
		{
			name: "three series with room for the legend",
			chart: BarChart{Title: "bytes", Categories: []string{"a", "b"}, Headroom: 0.3,
				Series: []BarSeries{{Name: "x", Values: []float64{1, 2}}, {Name: "y", Values: []float64{2, 1}}, {Name: "z", Values: []float64{1, nan}}}},
			want: []string{"<svg", "bytes", ">z<"},
		},
		{name: "no categories", chart: BarChart{Series: []BarSeries{{Name: "x"}}}, wantErr: "no categories"},
		{name: "no series", chart: BarChart{Categories: []string{"a"}}, wantErr: "no series"},
		{name: "short series", chart: BarChart{Categories: []string{"a", "b"}, Series: []BarSeries{{Name: "x", Values: []float64{1}}}}, wantErr: `"x" has 1 values for 2 categories`},
		{name: "half error bars", chart: BarChart{Categories: []string{"a"}, Series: []BarSeries{{Name: "x", Values: []float64{1}, Lo: []float64{1}}}}, wantErr: "error bars"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			svg, err := tc.chart.SVG()
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			// Well-formed XML, so browsers and Markdown viewers show it.
			d := xml.NewDecoder(strings.NewReader(string(svg)))
			for {
				if _, err := d.Token(); err != nil {
					if !errors.Is(err, io.EOF) {
						t.Fatalf("SVG is not well-formed XML: %v", err)
					}
					break
				}
			}
			for _, w := range tc.want {
				if !strings.Contains(string(svg), w) {
					t.Errorf("SVG lacks %q", w)
				}
			}
		})
	}
}
