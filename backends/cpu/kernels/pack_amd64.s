//go:build amd64 && !purego

#include "textflag.h"

// TRANSPOSE8 transposes the 8×8 block in Y0..Y7 (rows) into Y8..Y15
// (columns), using Y0..Y7 as scratch.
#define TRANSPOSE8 \
	VUNPCKLPS  Y1, Y0, Y8; \
	VUNPCKHPS  Y1, Y0, Y9; \
	VUNPCKLPS  Y3, Y2, Y10; \
	VUNPCKHPS  Y3, Y2, Y11; \
	VUNPCKLPS  Y5, Y4, Y12; \
	VUNPCKHPS  Y5, Y4, Y13; \
	VUNPCKLPS  Y7, Y6, Y14; \
	VUNPCKHPS  Y7, Y6, Y15; \
	VSHUFPS    $0x44, Y10, Y8, Y0; \
	VSHUFPS    $0xEE, Y10, Y8, Y1; \
	VSHUFPS    $0x44, Y11, Y9, Y2; \
	VSHUFPS    $0xEE, Y11, Y9, Y3; \
	VSHUFPS    $0x44, Y14, Y12, Y4; \
	VSHUFPS    $0xEE, Y14, Y12, Y5; \
	VSHUFPS    $0x44, Y15, Y13, Y6; \
	VSHUFPS    $0xEE, Y15, Y13, Y7; \
	VPERM2F128 $0x20, Y4, Y0, Y8; \
	VPERM2F128 $0x20, Y5, Y1, Y9; \
	VPERM2F128 $0x20, Y6, Y2, Y10; \
	VPERM2F128 $0x20, Y7, Y3, Y11; \
	VPERM2F128 $0x31, Y4, Y0, Y12; \
	VPERM2F128 $0x31, Y5, Y1, Y13; \
	VPERM2F128 $0x31, Y6, Y2, Y14; \
	VPERM2F128 $0x31, Y7, Y3, Y15

// func packBTransAVX2(dst, src *float32, ldb, kc8 int)
//
// Packs 16 rows of src (row stride ldb; row j is column j of op(B)) over
// kc8 columns (a multiple of 8) into dst[p*16+j].
TEXT ·packBTransAVX2(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ ldb+16(FP), R8
	MOVQ kc8+24(FP), CX
	SHLQ $2, R8
	SHRQ $3, CX
	JZ   pbdone
	LEAQ (R8)(R8*2), R11 // 3·ldb
pbloop:
	// Two 8×8 blocks: rows 0..7 and 8..15.
	MOVQ SI, R9
	MOVQ DI, R10
	MOVQ $2, DX
pbhalf:
	VMOVUPS (R9), Y0
	VMOVUPS (R9)(R8*1), Y1
	VMOVUPS (R9)(R8*2), Y2
	VMOVUPS (R9)(R11*1), Y3
	LEAQ    (R9)(R8*4), AX
	VMOVUPS (AX), Y4
	VMOVUPS (AX)(R8*1), Y5
	VMOVUPS (AX)(R8*2), Y6
	VMOVUPS (AX)(R11*1), Y7
	TRANSPOSE8
	VMOVUPS Y8, 0(R10)
	VMOVUPS Y9, 64(R10)
	VMOVUPS Y10, 128(R10)
	VMOVUPS Y11, 192(R10)
	VMOVUPS Y12, 256(R10)
	VMOVUPS Y13, 320(R10)
	VMOVUPS Y14, 384(R10)
	VMOVUPS Y15, 448(R10)
	LEAQ    (AX)(R8*4), R9
	ADDQ    $32, R10
	DECQ    DX
	JNZ     pbhalf
	ADDQ $32, SI
	ADDQ $512, DI
	DECQ CX
	JNZ  pbloop
pbdone:
	VZEROUPPER
	RET

// func packA6AVX2(dst, src *float32, lda, kc8 int)
//
// Packs 6 rows of src (row stride lda) over kc8 columns (a multiple of 8)
// into dst[p*6+r]. Each column is stored as 8 floats, so it writes 2 floats
// past dst[kc8*6-1]; the caller leaves room.
TEXT ·packA6AVX2(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ lda+16(FP), R8
	MOVQ kc8+24(FP), CX
	SHLQ $2, R8
	SHRQ $3, CX
	JZ   padone
	LEAQ (R8)(R8*2), R11 // 3·lda
paloop:
	VMOVUPS (SI), Y0
	VMOVUPS (SI)(R8*1), Y1
	VMOVUPS (SI)(R8*2), Y2
	VMOVUPS (SI)(R11*1), Y3
	LEAQ    (SI)(R8*4), AX
	VMOVUPS (AX), Y4
	VMOVUPS (AX)(R8*1), Y5
	VXORPS  Y6, Y6, Y6
	VXORPS  Y7, Y7, Y7
	TRANSPOSE8
	VMOVUPS Y8, 0(DI)
	VMOVUPS Y9, 24(DI)
	VMOVUPS Y10, 48(DI)
	VMOVUPS Y11, 72(DI)
	VMOVUPS Y12, 96(DI)
	VMOVUPS Y13, 120(DI)
	VMOVUPS Y14, 144(DI)
	VMOVUPS Y15, 168(DI)
	ADDQ $32, SI
	ADDQ $192, DI
	DECQ CX
	JNZ  paloop
padone:
	VZEROUPPER
	RET

// func packB16AVX2(dst, src *float32, ldb, kc int)
//
// Copies 16 consecutive floats of each of kc rows of src (stride ldb) to
// dst[p*16:].
TEXT ·packB16AVX2(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ ldb+16(FP), R8
	MOVQ kc+24(FP), CX
	SHLQ $2, R8
	TESTQ CX, CX
	JZ   cbdone
cbloop:
	VMOVUPS (SI), Y0
	VMOVUPS 32(SI), Y1
	VMOVUPS Y0, (DI)
	VMOVUPS Y1, 32(DI)
	ADDQ R8, SI
	ADDQ $64, DI
	DECQ CX
	JNZ  cbloop
cbdone:
	VZEROUPPER
	RET

// func packA6TransAVX2(dst, src *float32, lda, kc int)
//
// Copies 6 consecutive floats of each of kc rows of src (stride lda) to
// dst[p*6:].
TEXT ·packA6TransAVX2(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ lda+16(FP), R8
	MOVQ kc+24(FP), CX
	SHLQ $2, R8
	TESTQ CX, CX
	JZ   catdone
catloop:
	MOVUPS (SI), X0
	MOVQ   16(SI), X1
	MOVUPS X0, (DI)
	MOVQ   X1, 16(DI)
	ADDQ R8, SI
	ADDQ $24, DI
	DECQ CX
	JNZ  catloop
catdone:
	RET

// func packATransAVX2(dst, src *float32, lda, kc, panels int)
//
// Packs panels·6 consecutive columns of src over kc rows (stride lda):
// dst[q*kc*6 + p*6 + r] = src[p*lda + q*6 + r]. Rows are read in order.
TEXT ·packATransAVX2(SB), NOSPLIT, $0-40
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ lda+16(FP), R8
	MOVQ kc+24(FP), CX
	MOVQ panels+32(FP), R9
	SHLQ $2, R8
	MOVQ CX, R10
	IMULQ $24, R10 // bytes per packed panel
	TESTQ CX, CX
	JZ   patdone
	TESTQ R9, R9
	JZ   patdone
patrow:
	MOVQ SI, AX
	MOVQ DI, BX
	MOVQ R9, DX
patpanel:
	MOVUPS (AX), X0
	MOVQ   16(AX), X1
	MOVUPS X0, (BX)
	MOVQ   X1, 16(BX)
	ADDQ $24, AX
	ADDQ R10, BX
	DECQ DX
	JNZ  patpanel
	ADDQ R8, SI
	ADDQ $24, DI
	DECQ CX
	JNZ  patrow
patdone:
	RET
