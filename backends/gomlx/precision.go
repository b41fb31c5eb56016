package gomlx

import (
	"fmt"
	"math"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/dtypes/bfloat16"
	"github.com/gomlx/gomlx/pkg/core/tensors"

	"github.com/marin-go/marin/backends/train"
)

// Host-side conversions of the precision policies (train.Precision): the
// weights and moments travel to and from the devices in the policy's
// dtypes, and checkpoints hold float32.

func gomlxDType(d train.DType) dtypes.DType {
	if d == train.BF16 {
		return dtypes.BFloat16
	}
	return dtypes.Float32
}

// toBF16 rounds x to the nearest bfloat16, ties to even (as XLA converts;
// bfloat16.FromFloat32 truncates). NaN stays NaN.
func toBF16(x float32) bfloat16.BFloat16 {
	b := math.Float32bits(x)
	if x != x {
		return bfloat16.FromBits(uint16(b>>16) | 0x40)
	}
	b += 0x7fff + (b>>16)&1
	return bfloat16.FromBits(uint16(b >> 16))
}

// hostTensor makes a host tensor of shape in dt from float32 values.
func hostTensor(data []float32, shape []int, dt dtypes.DType) *tensors.Tensor {
	if dt == dtypes.BFloat16 {
		b := make([]bfloat16.BFloat16, len(data))
		for i, x := range data {
			b[i] = toBF16(x)
		}
		return tensors.FromFlatDataAndDimensions(b, shape...)
	}
	return tensors.FromFlatDataAndDimensions(append([]float32(nil), data...), shape...)
}

// toFloat32 copies a float32 or bfloat16 tensor's values out as float32.
func toFloat32(t *tensors.Tensor) ([]float32, error) {
	switch t.DType() {
	case dtypes.Float32:
		return tensors.CopyFlatData[float32](t)
	case dtypes.BFloat16:
		b, err := tensors.CopyFlatData[bfloat16.BFloat16](t)
		if err != nil {
			return nil, err
		}
		out := make([]float32, len(b))
		for i, x := range b {
			out[i] = x.Float32()
		}
		return out, nil
	}
	return nil, fmt.Errorf("gomlx: a %s tensor where float32 or bf16 was expected", t.DType())
}
