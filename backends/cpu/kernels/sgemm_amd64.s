//go:build amd64 && !purego

#include "textflag.h"

// One step of the shared dimension: B row (16 floats, Y0:Y1) times the six
// A values broadcast in turn, into accumulators Y4..Y15 (row r in
// Y(4+2r):Y(5+2r)).
#define KSTEP(aoff, boff) \
	VMOVUPS      (boff)(DI), Y0; \
	VMOVUPS      (boff+32)(DI), Y1; \
	VBROADCASTSS (aoff)(SI), Y2; \
	VBROADCASTSS (aoff+4)(SI), Y3; \
	VFMADD231PS  Y0, Y2, Y4; \
	VFMADD231PS  Y1, Y2, Y5; \
	VFMADD231PS  Y0, Y3, Y6; \
	VFMADD231PS  Y1, Y3, Y7; \
	VBROADCASTSS (aoff+8)(SI), Y2; \
	VBROADCASTSS (aoff+12)(SI), Y3; \
	VFMADD231PS  Y0, Y2, Y8; \
	VFMADD231PS  Y1, Y2, Y9; \
	VFMADD231PS  Y0, Y3, Y10; \
	VFMADD231PS  Y1, Y3, Y11; \
	VBROADCASTSS (aoff+16)(SI), Y2; \
	VBROADCASTSS (aoff+20)(SI), Y3; \
	VFMADD231PS  Y0, Y2, Y12; \
	VFMADD231PS  Y1, Y2, Y13; \
	VFMADD231PS  Y0, Y3, Y14; \
	VFMADD231PS  Y1, Y3, Y15

#define STOREROW(lo, hi) \
	VMOVUPS lo, (DX); \
	VMOVUPS hi, 32(DX); \
	ADDQ    R8, DX

#define ADDSTOREROW(lo, hi) \
	VADDPS  (DX), lo, lo; \
	VADDPS  32(DX), hi, hi; \
	VMOVUPS lo, (DX); \
	VMOVUPS hi, 32(DX); \
	ADDQ    R8, DX

// func sgemmKernelAVX2(k int, a, b, c *float32, ldc int, accumulate bool)
//
// c[i*ldc+j] (+)= sum_p a[p*6+i] * b[p*16+j] for i < 6, j < 16, p < k.
TEXT ·sgemmKernelAVX2(SB), NOSPLIT, $0-41
	MOVQ k+0(FP), CX
	MOVQ a+8(FP), SI
	MOVQ b+16(FP), DI
	MOVQ c+24(FP), DX
	MOVQ ldc+32(FP), R8
	SHLQ $2, R8

	// Warm the six rows of C while the products are computed.
	MOVQ DX, AX
	PREFETCHT0 (AX)
	PREFETCHT0 32(AX)
	ADDQ R8, AX
	PREFETCHT0 (AX)
	PREFETCHT0 32(AX)
	ADDQ R8, AX
	PREFETCHT0 (AX)
	PREFETCHT0 32(AX)
	ADDQ R8, AX
	PREFETCHT0 (AX)
	PREFETCHT0 32(AX)
	ADDQ R8, AX
	PREFETCHT0 (AX)
	PREFETCHT0 32(AX)
	ADDQ R8, AX
	PREFETCHT0 (AX)
	PREFETCHT0 32(AX)

	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	VXORPS Y8, Y8, Y8
	VXORPS Y9, Y9, Y9
	VXORPS Y10, Y10, Y10
	VXORPS Y11, Y11, Y11
	VXORPS Y12, Y12, Y12
	VXORPS Y13, Y13, Y13
	VXORPS Y14, Y14, Y14
	VXORPS Y15, Y15, Y15

	MOVQ CX, BX
	SHRQ $2, BX
	JZ   tail

loop4:
	PREFETCHT0 384(SI)
	PREFETCHT0 1024(DI)
	KSTEP(0, 0)
	KSTEP(24, 64)
	PREFETCHT0 1088(DI)
	KSTEP(48, 128)
	KSTEP(72, 192)
	ADDQ $96, SI
	ADDQ $256, DI
	DECQ BX
	JNZ  loop4

tail:
	ANDQ $3, CX
	JZ   store

loop1:
	KSTEP(0, 0)
	ADDQ $24, SI
	ADDQ $64, DI
	DECQ CX
	JNZ  loop1

store:
	MOVBLZX accumulate+40(FP), AX
	TESTQ   AX, AX
	JNZ     accum
	STOREROW(Y4, Y5)
	STOREROW(Y6, Y7)
	STOREROW(Y8, Y9)
	STOREROW(Y10, Y11)
	STOREROW(Y12, Y13)
	STOREROW(Y14, Y15)
	VZEROUPPER
	RET

accum:
	ADDSTOREROW(Y4, Y5)
	ADDSTOREROW(Y6, Y7)
	ADDSTOREROW(Y8, Y9)
	ADDSTOREROW(Y10, Y11)
	ADDSTOREROW(Y12, Y13)
	ADDSTOREROW(Y14, Y15)
	VZEROUPPER
	RET
