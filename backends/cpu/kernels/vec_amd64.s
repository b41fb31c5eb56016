//go:build amd64 && !purego

#include "textflag.h"

DATA expc<>+0(SB)/4, $0x42b0c0a5 // hi
DATA expc<>+4(SB)/4, $0x42b0c0a5 // hi
DATA expc<>+8(SB)/4, $0x42b0c0a5 // hi
DATA expc<>+12(SB)/4, $0x42b0c0a5 // hi
DATA expc<>+16(SB)/4, $0x42b0c0a5 // hi
DATA expc<>+20(SB)/4, $0x42b0c0a5 // hi
DATA expc<>+24(SB)/4, $0x42b0c0a5 // hi
DATA expc<>+28(SB)/4, $0x42b0c0a5 // hi
DATA expc<>+32(SB)/4, $0xc2aeac50 // lo
DATA expc<>+36(SB)/4, $0xc2aeac50 // lo
DATA expc<>+40(SB)/4, $0xc2aeac50 // lo
DATA expc<>+44(SB)/4, $0xc2aeac50 // lo
DATA expc<>+48(SB)/4, $0xc2aeac50 // lo
DATA expc<>+52(SB)/4, $0xc2aeac50 // lo
DATA expc<>+56(SB)/4, $0xc2aeac50 // lo
DATA expc<>+60(SB)/4, $0xc2aeac50 // lo
DATA expc<>+64(SB)/4, $0x3fb8aa3b // log2e
DATA expc<>+68(SB)/4, $0x3fb8aa3b // log2e
DATA expc<>+72(SB)/4, $0x3fb8aa3b // log2e
DATA expc<>+76(SB)/4, $0x3fb8aa3b // log2e
DATA expc<>+80(SB)/4, $0x3fb8aa3b // log2e
DATA expc<>+84(SB)/4, $0x3fb8aa3b // log2e
DATA expc<>+88(SB)/4, $0x3fb8aa3b // log2e
DATA expc<>+92(SB)/4, $0x3fb8aa3b // log2e
DATA expc<>+96(SB)/4, $0x3f318000 // c1
DATA expc<>+100(SB)/4, $0x3f318000 // c1
DATA expc<>+104(SB)/4, $0x3f318000 // c1
DATA expc<>+108(SB)/4, $0x3f318000 // c1
DATA expc<>+112(SB)/4, $0x3f318000 // c1
DATA expc<>+116(SB)/4, $0x3f318000 // c1
DATA expc<>+120(SB)/4, $0x3f318000 // c1
DATA expc<>+124(SB)/4, $0x3f318000 // c1
DATA expc<>+128(SB)/4, $0xb95e8083 // c2
DATA expc<>+132(SB)/4, $0xb95e8083 // c2
DATA expc<>+136(SB)/4, $0xb95e8083 // c2
DATA expc<>+140(SB)/4, $0xb95e8083 // c2
DATA expc<>+144(SB)/4, $0xb95e8083 // c2
DATA expc<>+148(SB)/4, $0xb95e8083 // c2
DATA expc<>+152(SB)/4, $0xb95e8083 // c2
DATA expc<>+156(SB)/4, $0xb95e8083 // c2
DATA expc<>+160(SB)/4, $0x39506967 // p0
DATA expc<>+164(SB)/4, $0x39506967 // p0
DATA expc<>+168(SB)/4, $0x39506967 // p0
DATA expc<>+172(SB)/4, $0x39506967 // p0
DATA expc<>+176(SB)/4, $0x39506967 // p0
DATA expc<>+180(SB)/4, $0x39506967 // p0
DATA expc<>+184(SB)/4, $0x39506967 // p0
DATA expc<>+188(SB)/4, $0x39506967 // p0
DATA expc<>+192(SB)/4, $0x3ab743ce // p1
DATA expc<>+196(SB)/4, $0x3ab743ce // p1
DATA expc<>+200(SB)/4, $0x3ab743ce // p1
DATA expc<>+204(SB)/4, $0x3ab743ce // p1
DATA expc<>+208(SB)/4, $0x3ab743ce // p1
DATA expc<>+212(SB)/4, $0x3ab743ce // p1
DATA expc<>+216(SB)/4, $0x3ab743ce // p1
DATA expc<>+220(SB)/4, $0x3ab743ce // p1
DATA expc<>+224(SB)/4, $0x3c088908 // p2
DATA expc<>+228(SB)/4, $0x3c088908 // p2
DATA expc<>+232(SB)/4, $0x3c088908 // p2
DATA expc<>+236(SB)/4, $0x3c088908 // p2
DATA expc<>+240(SB)/4, $0x3c088908 // p2
DATA expc<>+244(SB)/4, $0x3c088908 // p2
DATA expc<>+248(SB)/4, $0x3c088908 // p2
DATA expc<>+252(SB)/4, $0x3c088908 // p2
DATA expc<>+256(SB)/4, $0x3d2aa9c1 // p3
DATA expc<>+260(SB)/4, $0x3d2aa9c1 // p3
DATA expc<>+264(SB)/4, $0x3d2aa9c1 // p3
DATA expc<>+268(SB)/4, $0x3d2aa9c1 // p3
DATA expc<>+272(SB)/4, $0x3d2aa9c1 // p3
DATA expc<>+276(SB)/4, $0x3d2aa9c1 // p3
DATA expc<>+280(SB)/4, $0x3d2aa9c1 // p3
DATA expc<>+284(SB)/4, $0x3d2aa9c1 // p3
DATA expc<>+288(SB)/4, $0x3e2aaaaa // p4
DATA expc<>+292(SB)/4, $0x3e2aaaaa // p4
DATA expc<>+296(SB)/4, $0x3e2aaaaa // p4
DATA expc<>+300(SB)/4, $0x3e2aaaaa // p4
DATA expc<>+304(SB)/4, $0x3e2aaaaa // p4
DATA expc<>+308(SB)/4, $0x3e2aaaaa // p4
DATA expc<>+312(SB)/4, $0x3e2aaaaa // p4
DATA expc<>+316(SB)/4, $0x3e2aaaaa // p4
DATA expc<>+320(SB)/4, $0x3f000000 // p5
DATA expc<>+324(SB)/4, $0x3f000000 // p5
DATA expc<>+328(SB)/4, $0x3f000000 // p5
DATA expc<>+332(SB)/4, $0x3f000000 // p5
DATA expc<>+336(SB)/4, $0x3f000000 // p5
DATA expc<>+340(SB)/4, $0x3f000000 // p5
DATA expc<>+344(SB)/4, $0x3f000000 // p5
DATA expc<>+348(SB)/4, $0x3f000000 // p5
DATA expc<>+352(SB)/4, $0x3f800000 // one
DATA expc<>+356(SB)/4, $0x3f800000 // one
DATA expc<>+360(SB)/4, $0x3f800000 // one
DATA expc<>+364(SB)/4, $0x3f800000 // one
DATA expc<>+368(SB)/4, $0x3f800000 // one
DATA expc<>+372(SB)/4, $0x3f800000 // one
DATA expc<>+376(SB)/4, $0x3f800000 // one
DATA expc<>+380(SB)/4, $0x3f800000 // one
DATA expc<>+384(SB)/4, $0x0000007f // 127
DATA expc<>+388(SB)/4, $0x0000007f // 127
DATA expc<>+392(SB)/4, $0x0000007f // 127
DATA expc<>+396(SB)/4, $0x0000007f // 127
DATA expc<>+400(SB)/4, $0x0000007f // 127
DATA expc<>+404(SB)/4, $0x0000007f // 127
DATA expc<>+408(SB)/4, $0x0000007f // 127
DATA expc<>+412(SB)/4, $0x0000007f // 127
GLOBL expc<>(SB), RODATA|NOPTR, $416

// EXP8 sets X = exp(X) lane by lane (Cephes expf: clamp, x = n·ln2 + r,
// degree-5 polynomial, scale by 2^n); T1..T3 are clobbered. Inputs are
// clamped to [-87.34, 88.38], so very negative inputs give about 1.2e-38.
#define EXP8(X, T1, T2, T3) \
	VMINPS       expc<>+0(SB), X, X; \
	VMAXPS       expc<>+32(SB), X, X; \
	VMULPS       expc<>+64(SB), X, T1; \
	VROUNDPS     $0, T1, T1; \
	VFNMADD231PS expc<>+96(SB), T1, X; \
	VFNMADD231PS expc<>+128(SB), T1, X; \
	VMOVUPS      expc<>+160(SB), T2; \
	VFMADD213PS  expc<>+192(SB), X, T2; \
	VFMADD213PS  expc<>+224(SB), X, T2; \
	VFMADD213PS  expc<>+256(SB), X, T2; \
	VFMADD213PS  expc<>+288(SB), X, T2; \
	VFMADD213PS  expc<>+320(SB), X, T2; \
	VMULPS       X, X, T3; \
	VFMADD213PS  X, T3, T2; \
	VADDPS       expc<>+352(SB), T2, T2; \
	VCVTTPS2DQ   T1, T1; \
	VPADDD       expc<>+384(SB), T1, T1; \
	VPSLLD       $23, T1, T1; \
	VMULPS       T1, T2, X

#define HSUM(Y, X, XT) \
	VEXTRACTF128 $1, Y, XT; \
	VADDPS       XT, X, X; \
	VHADDPS      X, X, X; \
	VHADDPS      X, X, X

// func expShiftSumAVX2(dst, src *float32, n int, scale, shift float32) float32
// n is a multiple of 8.
TEXT ·expShiftSumAVX2(SB), NOSPLIT, $0-36
	MOVQ         dst+0(FP), DI
	MOVQ         src+8(FP), SI
	MOVQ         n+16(FP), CX
	VBROADCASTSS scale+24(FP), Y8
	VBROADCASTSS shift+28(FP), Y9
	VXORPS       Y10, Y10, Y10
	VXORPS       Y11, Y11, Y11
	SHRQ         $3, CX
	JZ           esdone
	TESTQ        $1, CX
	JZ           es2
	VMOVUPS      (SI), Y0
	VFMADD213PS  Y9, Y8, Y0
	EXP8(Y0, Y1, Y2, Y3)
	VMOVUPS      Y0, (DI)
	VADDPS       Y0, Y10, Y10
	ADDQ         $32, SI
	ADDQ         $32, DI
es2:
	SHRQ         $1, CX
	JZ           esdone
esloop:
	VMOVUPS      (SI), Y0
	VMOVUPS      32(SI), Y4
	VFMADD213PS  Y9, Y8, Y0
	VFMADD213PS  Y9, Y8, Y4
	EXP8(Y0, Y1, Y2, Y3)
	EXP8(Y4, Y5, Y6, Y7)
	VMOVUPS      Y0, (DI)
	VMOVUPS      Y4, 32(DI)
	VADDPS       Y0, Y10, Y10
	VADDPS       Y4, Y11, Y11
	ADDQ         $64, SI
	ADDQ         $64, DI
	DECQ         CX
	JNZ          esloop
esdone:
	VADDPS       Y11, Y10, Y10
	HSUM(Y10, X10, X1)
	VMOVSS       X10, ret+32(FP)
	VZEROUPPER
	RET

// func swigluAVX2(out, gate, up *float32, n int)
// out = g·u/(1+exp(-g)); n is a multiple of 8.
TEXT ·swigluAVX2(SB), NOSPLIT, $0-32
	MOVQ    out+0(FP), DI
	MOVQ    gate+8(FP), SI
	MOVQ    up+16(FP), DX
	MOVQ    n+24(FP), CX
	SHRQ    $3, CX
	JZ      swdone
	VXORPS  Y11, Y11, Y11
swloop:
	VMOVUPS (SI), Y4
	VSUBPS  Y4, Y11, Y0
	EXP8(Y0, Y1, Y2, Y3)
	VADDPS  expc<>+352(SB), Y0, Y0
	VMULPS  (DX), Y4, Y5
	VDIVPS  Y0, Y5, Y5
	VMOVUPS Y5, (DI)
	ADDQ    $32, SI
	ADDQ    $32, DX
	ADDQ    $32, DI
	DECQ    CX
	JNZ     swloop
swdone:
	VZEROUPPER
	RET

// func swigluBackwardAVX2(dg, du, da, gate, up *float32, n int)
// s = 1/(1+exp(-g)); du = da·g·s; dg = da·u·s·(1+g·(1-s)). dg may alias g
// and du may alias u. n is a multiple of 8.
TEXT ·swigluBackwardAVX2(SB), NOSPLIT, $0-48
	MOVQ    dg+0(FP), DI
	MOVQ    du+8(FP), R9
	MOVQ    da+16(FP), R10
	MOVQ    gate+24(FP), SI
	MOVQ    up+32(FP), DX
	MOVQ    n+40(FP), CX
	SHRQ    $3, CX
	JZ      sbdone
	VXORPS  Y11, Y11, Y11
	VMOVUPS expc<>+352(SB), Y12
sbloop:
	VMOVUPS (SI), Y4          // g
	VMOVUPS (DX), Y5          // u
	VMOVUPS (R10), Y6         // da
	VSUBPS  Y4, Y11, Y0
	EXP8(Y0, Y1, Y2, Y3)
	VADDPS  Y12, Y0, Y0       // 1+e
	VDIVPS  Y0, Y12, Y7       // s
	VMULPS  Y4, Y7, Y8        // g·s
	VMULPS  Y6, Y8, Y8        // da·g·s
	VSUBPS  Y7, Y12, Y9       // 1-s
	VFMADD213PS Y12, Y4, Y9   // g·(1-s)+1
	VMULPS  Y6, Y5, Y10       // da·u
	VMULPS  Y7, Y10, Y10      // ·s
	VMULPS  Y9, Y10, Y10      // ·(1+g(1-s))
	VMOVUPS Y10, (DI)
	VMOVUPS Y8, (R9)
	ADDQ    $32, SI
	ADDQ    $32, DX
	ADDQ    $32, R10
	ADDQ    $32, DI
	ADDQ    $32, R9
	DECQ    CX
	JNZ     sbloop
sbdone:
	VZEROUPPER
	RET

// func maxAVX2(x *float32, n int) float32
// n is a positive multiple of 8.
TEXT ·maxAVX2(SB), NOSPLIT, $0-20
	MOVQ    x+0(FP), SI
	MOVQ    n+8(FP), CX
	SHRQ    $3, CX
	VMOVUPS (SI), Y0
	VMOVUPS Y0, Y1
	ADDQ    $32, SI
	DECQ    CX
	JZ      mxdone
mxloop:
	VMAXPS  (SI), Y0, Y0
	ADDQ    $32, SI
	DECQ    CX
	JNZ     mxloop
mxdone:
	VEXTRACTF128 $1, Y0, X1
	VMAXPS  X1, X0, X0
	VPERMILPS $0x4e, X0, X1
	VMAXPS  X1, X0, X0
	VPERMILPS $0xb1, X0, X1
	VMAXPS  X1, X0, X0
	VMOVSS  X0, ret+16(FP)
	VZEROUPPER
	RET

// func adamwAVX2(data, grad, m, v *float32, n int, c *AdamWConsts)
// n is a multiple of 8. AdamWConsts: Clip, Beta1, Beta2, InvBC1, InvBC2,
// Eps, WeightDecay, LR at offsets 0..28.
TEXT ·adamwAVX2(SB), NOSPLIT, $0-48
	MOVQ data+0(FP), DI
	MOVQ grad+8(FP), SI
	MOVQ m+16(FP), R8
	MOVQ v+24(FP), R9
	MOVQ n+32(FP), CX
	MOVQ c+40(FP), AX
	VBROADCASTSS 0(AX), Y6   // clip
	VBROADCASTSS 4(AX), Y7   // b1
	VBROADCASTSS 8(AX), Y8   // b2
	VBROADCASTSS 12(AX), Y9  // 1/bc1
	VBROADCASTSS 16(AX), Y10 // 1/bc2
	VBROADCASTSS 20(AX), Y11 // eps
	VBROADCASTSS 24(AX), Y12 // wd
	VBROADCASTSS 28(AX), Y13 // lr
	VMOVUPS expc<>+352(SB), Y14
	VSUBPS  Y7, Y14, Y15     // 1-b1
	VSUBPS  Y8, Y14, Y14     // 1-b2
	SHRQ $3, CX
	JZ   awdone
awloop:
	VMULPS  (SI), Y6, Y0          // g
	VMULPS  (R8), Y7, Y1          // b1·m
	VFMADD231PS Y0, Y15, Y1       // + (1-b1)·g
	VMOVUPS Y1, (R8)
	VMULPS  Y0, Y0, Y3            // g²
	VMULPS  (R9), Y8, Y2          // b2·v
	VFMADD231PS Y3, Y14, Y2       // + (1-b2)·g²
	VMOVUPS Y2, (R9)
	VMULPS  Y10, Y2, Y2
	VSQRTPS Y2, Y2
	VADDPS  Y11, Y2, Y2           // √(v/bc2)+eps
	VMULPS  Y9, Y1, Y1            // m/bc1
	VDIVPS  Y2, Y1, Y1            // u
	VMOVUPS (DI), Y4
	VFMADD231PS Y4, Y12, Y1       // u += wd·θ
	VFNMADD231PS Y1, Y13, Y4      // θ -= lr·u
	VMOVUPS Y4, (DI)
	ADDQ $32, DI
	ADDQ $32, SI
	ADDQ $32, R8
	ADDQ $32, R9
	DECQ CX
	JNZ  awloop
awdone:
	VZEROUPPER
	RET


// The AVX-512 forms of the vector kernels in vec_amd64.s: 16 lanes, the
// constants broadcast from the same table (expc, defined there).

// EXP16 is EXP8 on a Z register (VRNDSCALEPS $0 rounds to nearest even as
// VROUNDPS $0 does).
#define EXP16(X, T1, T2, T3) \
	VMINPS.BCST       expc<>+0(SB), X, X; \
	VMAXPS.BCST       expc<>+32(SB), X, X; \
	VMULPS.BCST       expc<>+64(SB), X, T1; \
	VRNDSCALEPS       $0, T1, T1; \
	VFNMADD231PS.BCST expc<>+96(SB), T1, X; \
	VFNMADD231PS.BCST expc<>+128(SB), T1, X; \
	VBROADCASTSS      expc<>+160(SB), T2; \
	VFMADD213PS.BCST  expc<>+192(SB), X, T2; \
	VFMADD213PS.BCST  expc<>+224(SB), X, T2; \
	VFMADD213PS.BCST  expc<>+256(SB), X, T2; \
	VFMADD213PS.BCST  expc<>+288(SB), X, T2; \
	VFMADD213PS.BCST  expc<>+320(SB), X, T2; \
	VMULPS            X, X, T3; \
	VFMADD213PS       X, T3, T2; \
	VADDPS.BCST       expc<>+352(SB), T2, T2; \
	VCVTTPS2DQ        T1, T1; \
	VPADDD.BCST       expc<>+384(SB), T1, T1; \
	VPSLLD            $23, T1, T1; \
	VMULPS            T1, T2, X

// func expShiftSumAVX512(dst, src *float32, n int, scale, shift float32) float32
// n is a multiple of 16.
TEXT ·expShiftSumAVX512(SB), NOSPLIT, $0-36
	MOVQ         dst+0(FP), DI
	MOVQ         src+8(FP), SI
	MOVQ         n+16(FP), CX
	VBROADCASTSS scale+24(FP), Z8
	VBROADCASTSS shift+28(FP), Z9
	VPXORD       Z10, Z10, Z10
	VPXORD       Z11, Z11, Z11
	SHRQ         $4, CX
	JZ           esdone
	TESTQ        $1, CX
	JZ           es2
	VMOVUPS      (SI), Z0
	VFMADD213PS  Z9, Z8, Z0
	EXP16(Z0, Z1, Z2, Z3)
	VMOVUPS      Z0, (DI)
	VADDPS       Z0, Z10, Z10
	ADDQ         $64, SI
	ADDQ         $64, DI
es2:
	SHRQ         $1, CX
	JZ           esdone
esloop:
	VMOVUPS      (SI), Z0
	VMOVUPS      64(SI), Z4
	VFMADD213PS  Z9, Z8, Z0
	VFMADD213PS  Z9, Z8, Z4
	EXP16(Z0, Z1, Z2, Z3)
	EXP16(Z4, Z5, Z6, Z7)
	VMOVUPS      Z0, (DI)
	VMOVUPS      Z4, 64(DI)
	VADDPS       Z0, Z10, Z10
	VADDPS       Z4, Z11, Z11
	ADDQ         $128, SI
	ADDQ         $128, DI
	DECQ         CX
	JNZ          esloop
esdone:
	VADDPS         Z11, Z10, Z10
	VEXTRACTF64X4  $1, Z10, Y1
	VADDPS         Y1, Y10, Y10
	VEXTRACTF128   $1, Y10, X1
	VADDPS         X1, X10, X10
	VHADDPS        X10, X10, X10
	VHADDPS        X10, X10, X10
	VMOVSS         X10, ret+32(FP)
	VZEROUPPER
	RET

// func swigluAVX512(out, gate, up *float32, n int)
// out = g·u/(1+exp(-g)); n is a multiple of 16.
TEXT ·swigluAVX512(SB), NOSPLIT, $0-32
	MOVQ    out+0(FP), DI
	MOVQ    gate+8(FP), SI
	MOVQ    up+16(FP), DX
	MOVQ    n+24(FP), CX
	SHRQ    $4, CX
	JZ      swdone
	VPXORD  Z11, Z11, Z11
swloop:
	VMOVUPS (SI), Z4
	VSUBPS  Z4, Z11, Z0
	EXP16(Z0, Z1, Z2, Z3)
	VADDPS.BCST expc<>+352(SB), Z0, Z0
	VMULPS  (DX), Z4, Z5
	VDIVPS  Z0, Z5, Z5
	VMOVUPS Z5, (DI)
	ADDQ    $64, SI
	ADDQ    $64, DX
	ADDQ    $64, DI
	DECQ    CX
	JNZ     swloop
swdone:
	VZEROUPPER
	RET

// func swigluBackwardAVX512(dg, du, da, gate, up *float32, n int)
// s = 1/(1+exp(-g)); du = da·g·s; dg = da·u·s·(1+g·(1-s)). dg may alias g
// and du may alias u. n is a multiple of 16.
TEXT ·swigluBackwardAVX512(SB), NOSPLIT, $0-48
	MOVQ    dg+0(FP), DI
	MOVQ    du+8(FP), R9
	MOVQ    da+16(FP), R10
	MOVQ    gate+24(FP), SI
	MOVQ    up+32(FP), DX
	MOVQ    n+40(FP), CX
	SHRQ    $4, CX
	JZ      sbdone
	VPXORD  Z11, Z11, Z11
	VBROADCASTSS expc<>+352(SB), Z12
sbloop:
	VMOVUPS (SI), Z4          // g
	VMOVUPS (DX), Z5          // u
	VMOVUPS (R10), Z6         // da
	VSUBPS  Z4, Z11, Z0
	EXP16(Z0, Z1, Z2, Z3)
	VADDPS  Z12, Z0, Z0       // 1+e
	VDIVPS  Z0, Z12, Z7       // s
	VMULPS  Z4, Z7, Z8        // g·s
	VMULPS  Z6, Z8, Z8        // da·g·s
	VSUBPS  Z7, Z12, Z9       // 1-s
	VFMADD213PS Z12, Z4, Z9   // g·(1-s)+1
	VMULPS  Z6, Z5, Z10       // da·u
	VMULPS  Z7, Z10, Z10      // ·s
	VMULPS  Z9, Z10, Z10      // ·(1+g(1-s))
	VMOVUPS Z10, (DI)
	VMOVUPS Z8, (R9)
	ADDQ    $64, SI
	ADDQ    $64, DX
	ADDQ    $64, R10
	ADDQ    $64, DI
	ADDQ    $64, R9
	DECQ    CX
	JNZ     sbloop
sbdone:
	VZEROUPPER
	RET

// func maxAVX512(x *float32, n int) float32
// n is a positive multiple of 16.
TEXT ·maxAVX512(SB), NOSPLIT, $0-20
	MOVQ    x+0(FP), SI
	MOVQ    n+8(FP), CX
	SHRQ    $4, CX
	VMOVUPS (SI), Z0
	ADDQ    $64, SI
	DECQ    CX
	JZ      mxdone
mxloop:
	VMAXPS  (SI), Z0, Z0
	ADDQ    $64, SI
	DECQ    CX
	JNZ     mxloop
mxdone:
	VEXTRACTF64X4 $1, Z0, Y1
	VMAXPS  Y1, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VMAXPS  X1, X0, X0
	VPERMILPS $0x4e, X0, X1
	VMAXPS  X1, X0, X0
	VPERMILPS $0xb1, X0, X1
	VMAXPS  X1, X0, X0
	VMOVSS  X0, ret+16(FP)
	VZEROUPPER
	RET

// func adamwAVX512(data, grad, m, v *float32, n int, c *AdamWConsts)
// n is a multiple of 16; see adamwAVX2.
TEXT ·adamwAVX512(SB), NOSPLIT, $0-48
	MOVQ data+0(FP), DI
	MOVQ grad+8(FP), SI
	MOVQ m+16(FP), R8
	MOVQ v+24(FP), R9
	MOVQ n+32(FP), CX
	MOVQ c+40(FP), AX
	VBROADCASTSS 0(AX), Z6   // clip
	VBROADCASTSS 4(AX), Z7   // b1
	VBROADCASTSS 8(AX), Z8   // b2
	VBROADCASTSS 12(AX), Z9  // 1/bc1
	VBROADCASTSS 16(AX), Z10 // 1/bc2
	VBROADCASTSS 20(AX), Z11 // eps
	VBROADCASTSS 24(AX), Z12 // wd
	VBROADCASTSS 28(AX), Z13 // lr
	VBROADCASTSS expc<>+352(SB), Z14
	VSUBPS  Z7, Z14, Z15     // 1-b1
	VSUBPS  Z8, Z14, Z14     // 1-b2
	SHRQ $4, CX
	JZ   awdone
awloop:
	VMULPS  (SI), Z6, Z0          // g
	VMULPS  (R8), Z7, Z1          // b1·m
	VFMADD231PS Z0, Z15, Z1       // + (1-b1)·g
	VMOVUPS Z1, (R8)
	VMULPS  Z0, Z0, Z3            // g²
	VMULPS  (R9), Z8, Z2          // b2·v
	VFMADD231PS Z3, Z14, Z2       // + (1-b2)·g²
	VMOVUPS Z2, (R9)
	VMULPS  Z10, Z2, Z2
	VSQRTPS Z2, Z2
	VADDPS  Z11, Z2, Z2           // √(v/bc2)+eps
	VMULPS  Z9, Z1, Z1            // m/bc1
	VDIVPS  Z2, Z1, Z1            // u
	VMOVUPS (DI), Z4
	VFMADD231PS Z4, Z12, Z1       // u += wd·θ
	VFNMADD231PS Z1, Z13, Z4      // θ -= lr·u
	VMOVUPS Z4, (DI)
	ADDQ $64, DI
	ADDQ $64, SI
	ADDQ $64, R8
	ADDQ $64, R9
	DECQ CX
	JNZ  awloop
awdone:
	VZEROUPPER
	RET
