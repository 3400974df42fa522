package harness

import (
	"bytes"
	"errors"
	"fmt"
	"image/color"
	"math"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// BarChart is a bar chart over named categories (tests, setups), one bar
// per series in each category. It is rendered with gonum.org/v1/plot.
type BarChart struct {
	Title  string
	YLabel string
	// Categories label the groups along the x axis; a label may hold
	// "\n" for a second line.
	Categories []string
	Series     []BarSeries
	// RefLine, if non-zero, draws a dashed horizontal line at that value,
	// e.g. 1 on a ratio chart (parity with Redis).
	RefLine float64
	// Headroom is the room above the tallest bar for the legend, as a
	// fraction of the axis; 0 means 0.15. A legend of three or more
	// series needs more.
	Headroom float64
}

// BarSeries is one bar per category. Lo and Hi, if set (parallel to
// Values), draw an error bar from Lo to Hi; they are honoured only in a
// chart with a single series, where the bars sit exactly on the ticks.
type BarSeries struct {
	Name   string
	Values []float64
	Lo, Hi []float64
}

// seriesColors are distinguishable for common colour blindness (Okabe-Ito).
var seriesColors = []color.Color{
	color.RGBA{R: 0xd5, G: 0x5e, B: 0x00, A: 0xff}, // vermillion: Redis
	color.RGBA{R: 0x00, G: 0x72, B: 0xb2, A: 0xff}, // blue: ringcache
	color.RGBA{R: 0x00, G: 0x9e, B: 0x73, A: 0xff}, // green
	color.RGBA{R: 0xe6, G: 0x9f, B: 0x00, A: 0xff}, // orange
	color.RGBA{R: 0xcc, G: 0x79, B: 0xa7, A: 0xff}, // purple
}

// Validate checks that every series has one value per category and that
// error bars, if any, are complete.
func (c *BarChart) Validate() error {
	if len(c.Categories) == 0 {
		return errors.New("chart has no categories")
	}
	if len(c.Series) == 0 {
		return errors.New("chart has no series")
	}
	for _, s := range c.Series {
		if len(s.Values) != len(c.Categories) {
			return fmt.Errorf("series %q has %d values for %d categories", s.Name, len(s.Values), len(c.Categories))
		}
		if (s.Lo != nil || s.Hi != nil) && (len(s.Lo) != len(s.Values) || len(s.Hi) != len(s.Values)) {
			return fmt.Errorf("series %q: error bars need one low and one high value per category", s.Name)
		}
	}
	return nil
}

// SVG renders the chart as an SVG document. NaN values (failed or
// skipped measurements) are drawn as empty bars.
func (c *BarChart) SVG() ([]byte, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	p := plot.New()
	p.Title.Text = c.Title
	p.Y.Label.Text = c.YLabel
	p.Y.Min = 0
	p.Legend.Top = true
	p.Legend.Left = true
	p.Add(plotter.NewGrid())

	// Bars share about 80% of each category's width; the width is set in
	// canvas units, so derive it from the canvas size.
	width := c.width()
	group := 0.8 * (width - 1.5*vg.Inch) / vg.Length(len(c.Categories))
	barW := group / vg.Length(len(c.Series))
	for i, s := range c.Series {
		vals := make(plotter.Values, len(s.Values))
		for j, v := range s.Values {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				v = 0
			}
			vals[j] = v
		}
		bars, err := plotter.NewBarChart(vals, barW)
		if err != nil {
			return nil, fmt.Errorf("series %q: %w", s.Name, err)
		}
		bars.LineStyle.Width = 0
		bars.Color = seriesColors[i%len(seriesColors)]
		bars.Offset = barW * (vg.Length(i) - vg.Length(len(c.Series)-1)/2)
		p.Add(bars)
		if len(c.Series) > 1 || c.Series[0].Name != "" {
			p.Legend.Add(s.Name, bars)
		}
		if len(c.Series) == 1 && s.Lo != nil {
			eb, err := errorBars(s)
			if err != nil {
				return nil, err
			}
			p.Add(eb)
		}
	}
	if c.RefLine != 0 {
		ref, err := plotter.NewLine(plotter.XYs{{X: -0.5, Y: c.RefLine}, {X: float64(len(c.Categories)) - 0.5, Y: c.RefLine}})
		if err != nil {
			return nil, err
		}
		ref.LineStyle.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
		ref.LineStyle.Color = color.Gray{Y: 0x40}
		p.Add(ref)
		p.Y.Max = math.Max(p.Y.Max, 1.1*c.RefLine)
	}
	p.NominalX(c.Categories...)
	// Headroom for the legend above the tallest bar.
	room := c.Headroom
	if room <= 0 {
		room = 0.15
	}
	p.Y.Max *= 1 + room

	wt, err := p.WriterTo(width, 4*vg.Inch, "svg")
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if _, err := wt.WriteTo(&buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// width grows with the number of bars so that labels stay readable.
func (c *BarChart) width() vg.Length {
	bars := len(c.Categories) * len(c.Series)
	return vg.Length(math.Max(6, math.Min(16, 2+0.35*float64(bars)))) * vg.Inch
}

// errorBars draws Lo..Hi around each bar of s (NaN bounds draw nothing).
func errorBars(s BarSeries) (*plotter.YErrorBars, error) {
	pts := make(errPoints, len(s.Values))
	for i, v := range s.Values {
		lo, hi := s.Lo[i], s.Hi[i]
		if math.IsNaN(v) || math.IsNaN(lo) || math.IsNaN(hi) {
			lo, hi, v = 0, 0, 0
		}
		pts[i] = errPoint{x: float64(i), y: v, lo: v - lo, hi: hi - v}
	}
	eb, err := plotter.NewYErrorBars(pts)
	if err != nil {
		return nil, err
	}
	eb.LineStyle.Color = color.Black
	eb.CapWidth = vg.Points(6)
	return eb, nil
}

type errPoint struct{ x, y, lo, hi float64 }

// errPoints implements plotter.XYer and plotter.YErrorer.
type errPoints []errPoint

func (e errPoints) Len() int                        { return len(e) }
func (e errPoints) XY(i int) (float64, float64)     { return e[i].x, e[i].y }
func (e errPoints) YError(i int) (float64, float64) { return e[i].lo, e[i].hi }
