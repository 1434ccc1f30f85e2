package train

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math"
	"sort"

	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:staticcheck
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/ldm-project/ldm/nn"
)

// FrozenScope holds the networks a run uses but never trains nor saves
// (the perceptual loss's feature network): the run's builder loads them
// from their own weights, New never selects them, Save skips them. A
// checkpoint then holds only what the run learned, and a frozen network
// cannot drift by being restored from a stale copy.
const FrozenScope = "/frozen"

// perceptualScope is where a VAE run loads its FeatureNet.
const perceptualScope = FrozenScope + "/perceptual"

// FeatureNet is a frozen network whose activations a perceptual loss
// compares. This project uses its own emoji classifier (classify's
// Model.PerceptualNet); no ImageNet VGG/LPIPS weights are involved.
type FeatureNet struct {
	// Name identifies the network (a run stores the name it was resolved
	// from, so that --resume loads the same network again).
	Name string
	// Weights are loaded under FrozenScope/perceptual; Features reads them
	// from the context it is given.
	Weights nn.Source
	// Features returns the activations compared (each [B, …, C], channels
	// last) for NCHW images in [-1, 1].
	Features func(ctx *context.Context, x *Node) []*Node
}

// load copies the network's weights into ctx under perceptualScope.
func (f *FeatureNet) load(ctx *context.Context) error {
	if f.Weights == nil || f.Features == nil {
		return fmt.Errorf("perceptual network %q has no weights or no feature function", f.Name)
	}
	return LoadComponent(ctx, perceptualScope, f.Weights)
}

// Digest is a SHA-256 of the network's weights (keys, shapes and values),
// stored in the run so that a resume notices a network that changed.
func (f *FeatureNet) Digest() (string, error) {
	h := sha256.New()
	keys := f.Weights.Keys()
	sort.Strings(keys)
	for _, k := range keys {
		data, shape, err := f.Weights.Float32(k)
		if err != nil {
			return "", fmt.Errorf("%s: %w", k, err)
		}
		fmt.Fprintf(h, "%s%v", k, shape)
		buf := make([]byte, 4*len(data))
		for i, v := range data {
			binary.LittleEndian.PutUint32(buf[4*i:], math.Float32bits(v))
		}
		h.Write(buf)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// PerceptualDistance is an LPIPS-style distance (Zhang et al. 2018, with
// every channel weight 1) between two lists of activations of the same
// network, each [B, …, C] with channels last: every activation vector is
// unit-normalised along channels, the squared differences are summed over
// channels and averaged over positions and the batch, and the layers are
// averaged (LPIPS sums them; the mean keeps the value in [0, 4] whatever the
// number of layers). Identical inputs give exactly 0.
func PerceptualDistance(a, b []*Node) *Node {
	if len(a) != len(b) || len(a) == 0 {
		panic(fmt.Errorf("perceptual distance of %d and %d layers", len(a), len(b)))
	}
	var total *Node
	for i := range a {
		d := Sub(unitChannels(a[i]), unitChannels(b[i]))
		c := float64(d.Shape().Dim(-1))
		l := MulScalar(ReduceAllMean(Square(d)), c) // mean over positions of the channel sum
		if total == nil {
			total = l
		} else {
			total = Add(total, l)
		}
	}
	return MulScalar(total, 1/float64(len(a)))
}

// unitChannels divides x by its norm along the last axis. The 1e-10 inside
// the root (LPIPS adds it outside) keeps the gradient finite at a zero
// vector.
func unitChannels(x *Node) *Node {
	n := Sqrt(AddScalar(ReduceAndKeep(Square(x), ReduceSum, x.Rank()-1), 1e-10))
	return Div(x, n)
}

// perceptualTerm is the perceptual distance between images x and rec (NCHW)
// in the features of the network loaded under perceptualScope. Gradients
// reach rec (and through it the VAE); the network's variables are not
// among the trainer's, so it does not move.
func perceptualTerm(ctx *context.Context, net *FeatureNet, x, rec *Node) *Node {
	c := ctx.InAbsPath(perceptualScope)
	return PerceptualDistance(net.Features(c, StopGradient(x)), net.Features(c, rec))
}
