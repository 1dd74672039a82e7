//go:build ignore

// gen_defaults draws the default avatars defaults/avatar{1,2,3}.png: a
// coloured disc with a light person silhouette, anti-aliased, transparent
// outside the disc. Run it with `go generate ./storage/blob`.
package main

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"log/slog"
	"os"
	"path/filepath"
)

const (
	size = 128
	ss   = 4 // supersamples per axis
)

func main() {
	colors := []color.NRGBA{
		{0x2a, 0x9d, 0x8f, 0xff}, // teal
		{0xfe, 0x4f, 0x70, 0xff}, // sandcat pink
		{0x4c, 0x5c, 0xc4, 0xff}, // indigo
	}
	for i, c := range colors {
		path := filepath.Join("defaults", fmt.Sprintf("avatar%d.png", i+1))
		if err := write(path, draw(c)); err != nil {
			slog.Error("write avatar", "path", path, "err", err)
			os.Exit(1)
		}
	}
}

// shade returns the colour of one sample point (x, y in [0,size)): 0 outside
// the disc, 1 the background colour, 2 the silhouette.
func shade(x, y float64) int {
	c := size / 2.0
	dx, dy := x-c, y-c
	r := size/2.0 - 1
	if dx*dx+dy*dy > r*r {
		return 0
	}
	// head
	hx, hy, hr := c, size*0.40, size*0.18
	if (x-hx)*(x-hx)+(y-hy)*(y-hy) <= hr*hr {
		return 2
	}
	// shoulders: upper half of an ellipse
	sx, sy, sa, sb := c, size*0.93, size*0.34, size*0.30
	ex, ey := (x-sx)/sa, (y-sy)/sb
	if y <= sy && ex*ex+ey*ey <= 1 {
		return 2
	}
	return 1
}

func draw(bg color.NRGBA) *image.NRGBA {
	fg := color.NRGBA{0xfa, 0xfa, 0xfa, 0xff}
	img := image.NewNRGBA(image.Rect(0, 0, size, size))
	for py := 0; py < size; py++ {
		for px := 0; px < size; px++ {
			var n [3]int
			for sy := 0; sy < ss; sy++ {
				for sx := 0; sx < ss; sx++ {
					x := float64(px) + (float64(sx)+0.5)/ss
					y := float64(py) + (float64(sy)+0.5)/ss
					n[shade(x, y)]++
				}
			}
			in := n[1] + n[2]
			if in == 0 {
				continue
			}
			mix := func(a, b uint8) uint8 {
				return uint8((int(a)*n[1] + int(b)*n[2] + in/2) / in)
			}
			img.SetNRGBA(px, py, color.NRGBA{
				R: mix(bg.R, fg.R),
				G: mix(bg.G, fg.G),
				B: mix(bg.B, fg.B),
				A: uint8((255*in + ss*ss/2) / (ss * ss)),
			})
		}
	}
	return img
}

func write(path string, img image.Image) error {
	var buf bytes.Buffer
	enc := png.Encoder{CompressionLevel: png.BestCompression}
	if err := enc.Encode(&buf, img); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, buf.Bytes(), 0o644)
}
