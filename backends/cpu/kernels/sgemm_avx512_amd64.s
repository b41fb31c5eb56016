//go:build amd64 && !purego

#include "textflag.h"

// One step of the shared dimension for a 6×32 tile: B row p of the two
// 16-column micro-panels (Z0 from DI, Z1 from R9) times the six A values
// broadcast in turn, into accumulators Z4..Z15 (row r in Z(4+2r):Z(5+2r)).
#define KSTEP512(aoff, boff) \
	VMOVUPS      (boff)(DI), Z0; \
	VMOVUPS      (boff)(R9), Z1; \
	VBROADCASTSS (aoff)(SI), Z2; \
	VBROADCASTSS (aoff+4)(SI), Z3; \
	VFMADD231PS  Z0, Z2, Z4; \
	VFMADD231PS  Z1, Z2, Z5; \
	VFMADD231PS  Z0, Z3, Z6; \
	VFMADD231PS  Z1, Z3, Z7; \
	VBROADCASTSS (aoff+8)(SI), Z2; \
	VBROADCASTSS (aoff+12)(SI), Z3; \
	VFMADD231PS  Z0, Z2, Z8; \
	VFMADD231PS  Z1, Z2, Z9; \
	VFMADD231PS  Z0, Z3, Z10; \
	VFMADD231PS  Z1, Z3, Z11; \
	VBROADCASTSS (aoff+16)(SI), Z2; \
	VBROADCASTSS (aoff+20)(SI), Z3; \
	VFMADD231PS  Z0, Z2, Z12; \
	VFMADD231PS  Z1, Z2, Z13; \
	VFMADD231PS  Z0, Z3, Z14; \
	VFMADD231PS  Z1, Z3, Z15

#define STOREROW512(lo, hi) \
	VMOVUPS lo, (DX); \
	VMOVUPS hi, 64(DX); \
	ADDQ    R8, DX

#define ADDSTOREROW512(lo, hi) \
	VADDPS  (DX), lo, lo; \
	VADDPS  64(DX), hi, hi; \
	VMOVUPS lo, (DX); \
	VMOVUPS hi, 64(DX); \
	ADDQ    R8, DX

#define PREFETCHROW \
	PREFETCHT0 (AX); \
	PREFETCHT0 64(AX); \
	ADDQ       R8, AX

// func sgemmKernelAVX512(k int, a, b0, b1, c *float32, ldc int, accumulate bool)
//
// c[i*ldc+j] (+)= sum_p a[p*6+i] * b0[p*16+j]      for j < 16,
// c[i*ldc+16+j] (+)= sum_p a[p*6+i] * b1[p*16+j]   for j < 16,
// for i < 6 and p < k, each element one FMA per step in order of p (the
// same arithmetic as sgemmKernelAVX2).
TEXT ·sgemmKernelAVX512(SB), NOSPLIT, $0-49
	MOVQ k+0(FP), CX
	MOVQ a+8(FP), SI
	MOVQ b0+16(FP), DI
	MOVQ b1+24(FP), R9
	MOVQ c+32(FP), DX
	MOVQ ldc+40(FP), R8
	SHLQ $2, R8

	// Warm the six rows of C while the products are computed.
	MOVQ DX, AX
	PREFETCHROW
	PREFETCHROW
	PREFETCHROW
	PREFETCHROW
	PREFETCHROW
	PREFETCHROW

	VPXORD Z4, Z4, Z4
	VPXORD Z5, Z5, Z5
	VPXORD Z6, Z6, Z6
	VPXORD Z7, Z7, Z7
	VPXORD Z8, Z8, Z8
	VPXORD Z9, Z9, Z9
	VPXORD Z10, Z10, Z10
	VPXORD Z11, Z11, Z11
	VPXORD Z12, Z12, Z12
	VPXORD Z13, Z13, Z13
	VPXORD Z14, Z14, Z14
	VPXORD Z15, Z15, Z15

	MOVQ CX, BX
	SHRQ $2, BX
	JZ   tail

loop4:
	PREFETCHT0 384(SI)
	PREFETCHT0 512(DI)
	PREFETCHT0 512(R9)
	KSTEP512(0, 0)
	KSTEP512(24, 64)
	PREFETCHT0 640(DI)
	PREFETCHT0 640(R9)
	KSTEP512(48, 128)
	KSTEP512(72, 192)
	ADDQ $96, SI
	ADDQ $256, DI
	ADDQ $256, R9
	DECQ BX
	JNZ  loop4

tail:
	ANDQ $3, CX
	JZ   store

loop1:
	KSTEP512(0, 0)
	ADDQ $24, SI
	ADDQ $64, DI
	ADDQ $64, R9
	DECQ CX
	JNZ  loop1

store:
	MOVBLZX accumulate+48(FP), AX
	TESTQ   AX, AX
	JNZ     accum
	STOREROW512(Z4, Z5)
	STOREROW512(Z6, Z7)
	STOREROW512(Z8, Z9)
	STOREROW512(Z10, Z11)
	STOREROW512(Z12, Z13)
	STOREROW512(Z14, Z15)
	VZEROUPPER
	RET

accum:
	ADDSTOREROW512(Z4, Z5)
	ADDSTOREROW512(Z6, Z7)
	ADDSTOREROW512(Z8, Z9)
	ADDSTOREROW512(Z10, Z11)
	ADDSTOREROW512(Z12, Z13)
	ADDSTOREROW512(Z14, Z15)
	VZEROUPPER
	RET
