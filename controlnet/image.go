package controlnet

import (
	"image"
	"image/color"
)

// ImageTensor is a control image as the ControlNet reads it: NCHW
// [1,3,H,W] RGB in [0,1] (diffusers' prepare_image, u8/255; AUTOMATIC1111's
// extension the same), H and W the image's size.
func ImageTensor(img image.Image) ([]float32, []int) {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	out := make([]float32, 3*h*w)
	for y := range h {
		for x := range w {
			c := color.NRGBAModel.Convert(img.At(b.Min.X+x, b.Min.Y+y)).(color.NRGBA)
			i := y*w + x
			out[i] = float32(c.R) / 255
			out[h*w+i] = float32(c.G) / 255
			out[2*h*w+i] = float32(c.B) / 255
		}
	}
	return out, []int{1, 3, h, w}
}
