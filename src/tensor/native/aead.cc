// A third, tiny addon (`neuroshard_aead`): AES-256-GCM contexts that live as long as a lane's direction, for the
// direct data lane's sealed frames (src/p2p/lane/aead.ts, docs/PROTOCOL.md "Direct data lane").
//
// Why: Node's crypto has no reusable GCM context; `createCipheriv` per frame costs 8-10 us on this machine (a key
// schedule, a JS object and its native handle, four per small round trip), more than the cipher work on a 3 KiB
// frame. Here one EVP_CIPHER_CTX per direction is keyed once and re-initialised with only the IV for each frame.
// The cipher is OpenSSL's, the one the `node` binary itself carries and exports (EVP_* symbols; headers from
// Node's include dir, <node>/include/node/openssl), no library linked; since session 23, on a CPU with 512-bit VAES
// and VPCLMULQDQ, a kernel of our own (`vgcm` below, ~1.8x OpenSSL 3.0's on this host since session 26) unless the context is made
// with kernel "openssl" (NEUROSHARD_LANE_GCM=openssl).
//
// Use from JS (one object per direction; every call synchronous, on the caller's thread):
//   const c = new GcmContext(key /* 32 bytes */, encrypt /* bool */, kernel /* "auto" (default) | "openssl" */)
//   c.kernel() -> "vaes512" | "openssl"             which kernel this context runs
//   c.begin(iv /* 12 bytes */, aad)                 start a frame
//   c.update(src, dst, at = 0)                      src.length bytes into dst from byte `at` (dst may be src: in place)
//   c.finishEncrypt(dst, at = 0)                    encrypting context: the 16-byte tag into dst from byte `at`
//   c.finishDecrypt(tag, at = 0) -> bool            decrypting context: the 16-byte tag at tag[at]; false when it
//                                                   does not verify
// Every buffer length is checked here; a call out of order (update before begin, ...) throws.
#include <napi.h>

// A Node without OpenSSL headers in its include dir (one built against a shared system OpenSSL without its -dev
// headers) must still build the compute addon beside this one (node-gyp builds every target or none): then this
// module exports no GcmContext and the lane uses node:crypto (src/p2p/lane/aead.ts).
#if defined(__has_include)
#if __has_include(<openssl/evp.h>)
#define NEUROSHARD_HAVE_OPENSSL 1
#endif
#endif

#ifdef NEUROSHARD_HAVE_OPENSSL
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define NEUROSHARD_HAVE_VAES_KERNEL 1
#endif

namespace {
#ifdef NEUROSHARD_HAVE_VAES_KERNEL
// GCC 12's AVX-512 broadcast intrinsics start from an undefined register (a false -Wmaybe-uninitialized)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
// ───────────── AES-256-GCM with 512-bit VAES and VPCLMULQDQ (session 23) ─────────────
//
// Why: the OpenSSL inside Node 20 (3.0.x) has no VAES/AVX-512 GCM; it runs its 128-bit AES-NI/AVX kernel
// (`aesni_ctr32_ghash_6x`) at ~230 us per MiB each way, the largest single part of a 1 MiB lane call on a host with
// 512-bit VAES (docs/LIMITS.md "Session 23: 1 MiB on the lane, continued"). This kernel runs 16 blocks a step: the
// counter blocks through AES-256 four to a register, and GHASH over the 16 ciphertext blocks with one reduction
// (Y' = (Y ^ X0)·H^16 ^ X1·H^15 ^ … ^ X15·H). It is used only where the CPU has VAES, VPCLMULQDQ and AVX-512
// (checked at run time) and not turned off (NEUROSHARD_LANE_GCM=openssl, src/p2p/lane/aead.ts); OpenSSL's path is
// the fallback. The bytes are GCM's (NIST SP 800-38D, 96-bit IV, 128-bit tag): test/unit/p2p/lane-aead-vaes.test.ts
// checks them against node:crypto on the NIST vectors and thousands of random keys, IVs, AADs, lengths and update
// splits. The tag comparison is OpenSSL's CRYPTO_memcmp (constant time); the key schedule and H powers are wiped
// with OPENSSL_cleanse when the context goes.
//
// GHASH works on byte-reversed blocks with the shift-and-reduce of Gueron and Kounavis ("Intel Carry-Less
// Multiplication Instruction and its Usage for Computing the GCM Mode", algorithm 5): the product of two such
// blocks is the 256-bit carry-less product, shifted left by one bit, reduced modulo x^128 + x^7 + x^2 + x + 1. The
// shift and the reduction are linear, so sixteen products are summed unreduced and reduced once.
#define NS_VAES_TARGET __attribute__((target("aes,pclmul,ssse3,sse4.1,avx,avx2,avx512f,avx512bw,avx512vl,vaes,vpclmulqdq")))

namespace vgcm {

NS_VAES_TARGET static inline __m128i bswap(__m128i x) {
  return _mm_shuffle_epi8(x, _mm_set_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15));
}

NS_VAES_TARGET static inline __m512i bswap4(__m512i x) {
  return _mm512_shuffle_epi8(x, _mm512_broadcast_i32x4(_mm_set_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)));
}

// AES-256 key schedule (FIPS 197), AES-NI's key-generation assist
NS_VAES_TARGET static inline __m128i expandA(__m128i t1, __m128i assist) {
  __m128i t2 = _mm_shuffle_epi32(assist, 0xff);
  __m128i t4 = _mm_slli_si128(t1, 4);
  t1 = _mm_xor_si128(t1, t4);
  t4 = _mm_slli_si128(t4, 4);
  t1 = _mm_xor_si128(t1, t4);
  t4 = _mm_slli_si128(t4, 4);
  t1 = _mm_xor_si128(t1, t4);
  return _mm_xor_si128(t1, t2);
}

NS_VAES_TARGET static inline __m128i expandB(__m128i t1, __m128i t3) {
  __m128i t2 = _mm_shuffle_epi32(_mm_aeskeygenassist_si128(t1, 0x00), 0xaa);
  __m128i t4 = _mm_slli_si128(t3, 4);
  t3 = _mm_xor_si128(t3, t4);
  t4 = _mm_slli_si128(t4, 4);
  t3 = _mm_xor_si128(t3, t4);
  t4 = _mm_slli_si128(t4, 4);
  t3 = _mm_xor_si128(t3, t4);
  return _mm_xor_si128(t3, t2);
}

NS_VAES_TARGET static void expandKey(const uint8_t* key, __m128i* rk) {
  __m128i t1 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(key));
  __m128i t3 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(key + 16));
  rk[0] = t1;
  rk[1] = t3;
  t1 = expandA(t1, _mm_aeskeygenassist_si128(t3, 0x01)); rk[2] = t1; t3 = expandB(t1, t3); rk[3] = t3;
  t1 = expandA(t1, _mm_aeskeygenassist_si128(t3, 0x02)); rk[4] = t1; t3 = expandB(t1, t3); rk[5] = t3;
  t1 = expandA(t1, _mm_aeskeygenassist_si128(t3, 0x04)); rk[6] = t1; t3 = expandB(t1, t3); rk[7] = t3;
  t1 = expandA(t1, _mm_aeskeygenassist_si128(t3, 0x08)); rk[8] = t1; t3 = expandB(t1, t3); rk[9] = t3;
  t1 = expandA(t1, _mm_aeskeygenassist_si128(t3, 0x10)); rk[10] = t1; t3 = expandB(t1, t3); rk[11] = t3;
  t1 = expandA(t1, _mm_aeskeygenassist_si128(t3, 0x20)); rk[12] = t1; t3 = expandB(t1, t3); rk[13] = t3;
  t1 = expandA(t1, _mm_aeskeygenassist_si128(t3, 0x40)); rk[14] = t1;
}

NS_VAES_TARGET static inline __m128i encryptBlock(const __m128i* rk, __m128i x) {
  x = _mm_xor_si128(x, rk[0]);
  for (int i = 1; i < 14; i++) x = _mm_aesenc_si128(x, rk[i]);
  return _mm_aesenclast_si128(x, rk[14]);
}

// the 256-bit carry-less product of a and b (lo, hi), each 128-bit lane alone
NS_VAES_TARGET static inline void clmul(__m128i a, __m128i b, __m128i& lo, __m128i& hi) {
  __m128i l = _mm_clmulepi64_si128(a, b, 0x00);
  __m128i h = _mm_clmulepi64_si128(a, b, 0x11);
  __m128i m = _mm_xor_si128(_mm_clmulepi64_si128(a, b, 0x10), _mm_clmulepi64_si128(a, b, 0x01));
  lo = _mm_xor_si128(l, _mm_slli_si128(m, 8));
  hi = _mm_xor_si128(h, _mm_srli_si128(m, 8));
}

// (lo, hi) shifted left by one bit and reduced: the GHASH product of the two byte-reversed factors
NS_VAES_TARGET static inline __m128i reduce(__m128i lo, __m128i hi) {
  __m128i t7 = _mm_srli_epi32(lo, 31);
  __m128i t8 = _mm_srli_epi32(hi, 31);
  lo = _mm_slli_epi32(lo, 1);
  hi = _mm_slli_epi32(hi, 1);
  __m128i t9 = _mm_srli_si128(t7, 12);
  t8 = _mm_slli_si128(t8, 4);
  t7 = _mm_slli_si128(t7, 4);
  lo = _mm_or_si128(lo, t7);
  hi = _mm_or_si128(hi, t8);
  hi = _mm_or_si128(hi, t9);
  t7 = _mm_slli_epi32(lo, 31);
  t8 = _mm_slli_epi32(lo, 30);
  t9 = _mm_slli_epi32(lo, 25);
  t7 = _mm_xor_si128(t7, t8);
  t7 = _mm_xor_si128(t7, t9);
  t8 = _mm_srli_si128(t7, 4);
  t7 = _mm_slli_si128(t7, 12);
  lo = _mm_xor_si128(lo, t7);
  __m128i t2 = _mm_srli_epi32(lo, 1);
  __m128i t4 = _mm_srli_epi32(lo, 2);
  __m128i t5 = _mm_srli_epi32(lo, 7);
  t2 = _mm_xor_si128(t2, t4);
  t2 = _mm_xor_si128(t2, t5);
  t2 = _mm_xor_si128(t2, t8);
  lo = _mm_xor_si128(lo, t2);
  return _mm_xor_si128(hi, lo);
}

NS_VAES_TARGET static inline __m128i gfmul(__m128i a, __m128i b) {
  __m128i lo, hi;
  clmul(a, b, lo, hi);
  return reduce(lo, hi);
}

NS_VAES_TARGET static inline __m128i fold4(__m512i z) {
  return _mm_xor_si128(_mm_xor_si128(_mm512_extracti32x4_epi32(z, 0), _mm512_extracti32x4_epi32(z, 1)),
                       _mm_xor_si128(_mm512_extracti32x4_epi32(z, 2), _mm512_extracti32x4_epi32(z, 3)));
}

struct State {
  __m128i rk[15];     // AES-256 round keys
  __m128i h;          // H = E_K(0), byte-reversed
  // [H^32 H^31 H^30 H^29] [H^28 … H^25] … [H^4 … H^1], byte-reversed, lane 0 first: vector v lane l holds
  // H^(32 - 4v - l), the factor of block 4v + l of a 512-byte run (bulk32); a 256-byte run (bulk16) takes the last four
  uint8_t hpow[8][64];
  // one frame
  __m128i y;          // the GHASH accumulator, byte-reversed
  __m128i ivRev;      // IV ‖ 0 byte-reversed: the counter is its low dword (added mod 2^32, as GCM's inc32)
  __m128i ej0;        // E_K(J0), for the tag
  uint32_t ctr;       // the next counter value
  uint64_t aadBytes;
  uint64_t textBytes;
  uint8_t ks[16];     // the keystream of a block begun and not finished
  uint8_t gb[16];     // that block's ciphertext so far
  unsigned pos;       // bytes of that block done (0: none begun)
};

NS_VAES_TARGET static void init(State& s, const uint8_t* key) {
  expandKey(key, s.rk);
  s.h = bswap(encryptBlock(s.rk, _mm_setzero_si128()));
  __m128i p[33];
  p[1] = s.h;
  for (int i = 2; i <= 32; i++) p[i] = gfmul(p[i - 1], s.h);
  for (int k = 0; k < 8; k++)
    for (int lane = 0; lane < 4; lane++) _mm_storeu_si128(reinterpret_cast<__m128i*>(&s.hpow[k][16 * lane]), p[32 - 4 * k - lane]);
  OPENSSL_cleanse(p, sizeof(p));
}

NS_VAES_TARGET static inline void ghashBlock(State& s, const uint8_t* b) {
  s.y = gfmul(_mm_xor_si128(s.y, bswap(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b)))), s.h);
}

NS_VAES_TARGET static void begin(State& s, const uint8_t* iv, const uint8_t* aad, size_t aadLen) {
  uint8_t block[16] = {0};
  std::memcpy(block, iv, 12);
  s.ivRev = bswap(_mm_loadu_si128(reinterpret_cast<const __m128i*>(block)));
  s.ej0 = encryptBlock(s.rk, bswap(_mm_insert_epi32(s.ivRev, 1, 0)));
  s.ctr = 2;
  s.y = _mm_setzero_si128();
  s.aadBytes = aadLen;
  s.textBytes = 0;
  s.pos = 0;
  size_t i = 0;
  for (; aadLen - i >= 16; i += 16) ghashBlock(s, aad + i);
  if (i < aadLen) {
    std::memset(block, 0, 16);
    std::memcpy(block, aad + i, aadLen - i);
    ghashBlock(s, block);
  }
}

NS_VAES_TARGET static inline __m128i counterBlock(State& s) {
  return bswap(_mm_insert_epi32(s.ivRev, static_cast<int>(s.ctr++), 0));
}

// 256 bytes: 16 counter blocks through AES, XORed with src into dst; GHASH over the ciphertext (dst when
// encrypting, src when decrypting: read before dst is written, so in place is fine)
NS_VAES_TARGET static inline void bulk16(State& s, const uint8_t* src, uint8_t* dst, bool encrypt) {
  const __m512i rev = _mm512_broadcast_i32x4(s.ivRev);
  const uint32_t c = s.ctr;
  __m512i b0 = _mm512_add_epi32(rev, _mm512_set_epi32(0, 0, 0, c + 3, 0, 0, 0, c + 2, 0, 0, 0, c + 1, 0, 0, 0, c));
  __m512i b1 = _mm512_add_epi32(rev, _mm512_set_epi32(0, 0, 0, c + 7, 0, 0, 0, c + 6, 0, 0, 0, c + 5, 0, 0, 0, c + 4));
  __m512i b2 = _mm512_add_epi32(rev, _mm512_set_epi32(0, 0, 0, c + 11, 0, 0, 0, c + 10, 0, 0, 0, c + 9, 0, 0, 0, c + 8));
  __m512i b3 = _mm512_add_epi32(rev, _mm512_set_epi32(0, 0, 0, c + 15, 0, 0, 0, c + 14, 0, 0, 0, c + 13, 0, 0, 0, c + 12));
  s.ctr = c + 16;
  b0 = bswap4(b0);
  b1 = bswap4(b1);
  b2 = bswap4(b2);
  b3 = bswap4(b3);
  __m512i k = _mm512_broadcast_i32x4(s.rk[0]);
  b0 = _mm512_xor_si512(b0, k);
  b1 = _mm512_xor_si512(b1, k);
  b2 = _mm512_xor_si512(b2, k);
  b3 = _mm512_xor_si512(b3, k);
  for (int r = 1; r < 14; r++) {
    k = _mm512_broadcast_i32x4(s.rk[r]);
    b0 = _mm512_aesenc_epi128(b0, k);
    b1 = _mm512_aesenc_epi128(b1, k);
    b2 = _mm512_aesenc_epi128(b2, k);
    b3 = _mm512_aesenc_epi128(b3, k);
  }
  k = _mm512_broadcast_i32x4(s.rk[14]);
  b0 = _mm512_aesenclast_epi128(b0, k);
  b1 = _mm512_aesenclast_epi128(b1, k);
  b2 = _mm512_aesenclast_epi128(b2, k);
  b3 = _mm512_aesenclast_epi128(b3, k);
  const __m512i i0 = _mm512_loadu_si512(src);
  const __m512i i1 = _mm512_loadu_si512(src + 64);
  const __m512i i2 = _mm512_loadu_si512(src + 128);
  const __m512i i3 = _mm512_loadu_si512(src + 192);
  const __m512i o0 = _mm512_xor_si512(i0, b0);
  const __m512i o1 = _mm512_xor_si512(i1, b1);
  const __m512i o2 = _mm512_xor_si512(i2, b2);
  const __m512i o3 = _mm512_xor_si512(i3, b3);
  _mm512_storeu_si512(dst, o0);
  _mm512_storeu_si512(dst + 64, o1);
  _mm512_storeu_si512(dst + 128, o2);
  _mm512_storeu_si512(dst + 192, o3);
  __m512i x0 = bswap4(encrypt ? o0 : i0);
  const __m512i x1 = bswap4(encrypt ? o1 : i1);
  const __m512i x2 = bswap4(encrypt ? o2 : i2);
  const __m512i x3 = bswap4(encrypt ? o3 : i3);
  x0 = _mm512_xor_si512(x0, _mm512_inserti32x4(_mm512_setzero_si512(), s.y, 0));
  const __m512i h0 = _mm512_loadu_si512(s.hpow[4]);
  const __m512i h1 = _mm512_loadu_si512(s.hpow[5]);
  const __m512i h2 = _mm512_loadu_si512(s.hpow[6]);
  const __m512i h3 = _mm512_loadu_si512(s.hpow[7]);
  __m512i lo = _mm512_xor_si512(_mm512_xor_si512(_mm512_clmulepi64_epi128(x0, h0, 0x00), _mm512_clmulepi64_epi128(x1, h1, 0x00)),
                                _mm512_xor_si512(_mm512_clmulepi64_epi128(x2, h2, 0x00), _mm512_clmulepi64_epi128(x3, h3, 0x00)));
  __m512i hi = _mm512_xor_si512(_mm512_xor_si512(_mm512_clmulepi64_epi128(x0, h0, 0x11), _mm512_clmulepi64_epi128(x1, h1, 0x11)),
                                _mm512_xor_si512(_mm512_clmulepi64_epi128(x2, h2, 0x11), _mm512_clmulepi64_epi128(x3, h3, 0x11)));
  __m512i mid = _mm512_xor_si512(_mm512_xor_si512(_mm512_clmulepi64_epi128(x0, h0, 0x10), _mm512_clmulepi64_epi128(x1, h1, 0x10)),
                                 _mm512_xor_si512(_mm512_clmulepi64_epi128(x2, h2, 0x10), _mm512_clmulepi64_epi128(x3, h3, 0x10)));
  mid = _mm512_xor_si512(mid, _mm512_xor_si512(_mm512_xor_si512(_mm512_clmulepi64_epi128(x0, h0, 0x01), _mm512_clmulepi64_epi128(x1, h1, 0x01)),
                                               _mm512_xor_si512(_mm512_clmulepi64_epi128(x2, h2, 0x01), _mm512_clmulepi64_epi128(x3, h3, 0x01))));
  const __m128i m = fold4(mid);
  const __m128i l = _mm_xor_si128(fold4(lo), _mm_slli_si128(m, 8));
  const __m128i h = _mm_xor_si128(fold4(hi), _mm_srli_si128(m, 8));
  s.y = reduce(l, h);
}

// 512 bytes: bulk16's work on 32 counter blocks at once (session 26). Eight independent AES streams instead of four
// keep more VAESENC in flight (a stream's 14 rounds are a chain of dependent instructions), and the GHASH of 32
// blocks is summed unreduced and reduced once, so the chain through the accumulator (xor, multiply, fold, reduce)
// is paid once per 512 bytes instead of once per 256. Same bits as two bulk16 calls (the sum is linear).
NS_VAES_TARGET static inline void bulk32(State& s, const uint8_t* src, uint8_t* dst, bool encrypt) {
  const __m512i rev = _mm512_broadcast_i32x4(s.ivRev);
  const uint32_t c = s.ctr;
  s.ctr = c + 32;
  // lane l of vector v: counter c + 4v + l in the low dword (GCM's inc32, mod 2^32)
  __m512i ctr = _mm512_add_epi32(rev, _mm512_set_epi32(0, 0, 0, c + 3, 0, 0, 0, c + 2, 0, 0, 0, c + 1, 0, 0, 0, c));
  const __m512i four = _mm512_set_epi32(0, 0, 0, 4, 0, 0, 0, 4, 0, 0, 0, 4, 0, 0, 0, 4);
  __m512i b[8];
  __m512i k = _mm512_broadcast_i32x4(s.rk[0]);
#pragma GCC unroll 8
  for (int v = 0; v < 8; v++) {
    b[v] = _mm512_xor_si512(bswap4(ctr), k);
    ctr = _mm512_add_epi32(ctr, four);
  }
  for (int r = 1; r < 14; r++) {
    k = _mm512_broadcast_i32x4(s.rk[r]);
#pragma GCC unroll 8
    for (int v = 0; v < 8; v++) b[v] = _mm512_aesenc_epi128(b[v], k);
  }
  k = _mm512_broadcast_i32x4(s.rk[14]);
  __m512i in[8], x[8];
#pragma GCC unroll 8
  for (int v = 0; v < 8; v++) in[v] = _mm512_loadu_si512(src + 64 * v);
#pragma GCC unroll 8
  for (int v = 0; v < 8; v++) {
    const __m512i out = _mm512_xor_si512(in[v], _mm512_aesenclast_epi128(b[v], k));
    _mm512_storeu_si512(dst + 64 * v, out);
    x[v] = bswap4(encrypt ? out : in[v]);
  }
  x[0] = _mm512_xor_si512(x[0], _mm512_inserti32x4(_mm512_setzero_si512(), s.y, 0));
  __m512i lo = _mm512_setzero_si512(), hi = _mm512_setzero_si512(), mid = _mm512_setzero_si512();
#pragma GCC unroll 8
  for (int v = 0; v < 8; v++) {
    const __m512i h = _mm512_loadu_si512(s.hpow[v]);
    lo = _mm512_xor_si512(lo, _mm512_clmulepi64_epi128(x[v], h, 0x00));
    hi = _mm512_xor_si512(hi, _mm512_clmulepi64_epi128(x[v], h, 0x11));
    mid = _mm512_xor_si512(mid, _mm512_xor_si512(_mm512_clmulepi64_epi128(x[v], h, 0x10), _mm512_clmulepi64_epi128(x[v], h, 0x01)));
  }
  const __m128i m = fold4(mid);
  const __m128i l = _mm_xor_si128(fold4(lo), _mm_slli_si128(m, 8));
  const __m128i h = _mm_xor_si128(fold4(hi), _mm_srli_si128(m, 8));
  s.y = reduce(l, h);
}

NS_VAES_TARGET static void update(State& s, const uint8_t* src, uint8_t* dst, size_t n, bool encrypt) {
  s.textBytes += n;
  size_t i = 0;
  if (s.pos > 0) {
    // finish the block begun by the last call
    for (; i < n && s.pos < 16; i++, s.pos++) {
      const uint8_t in = src[i];
      const uint8_t out = static_cast<uint8_t>(in ^ s.ks[s.pos]);
      dst[i] = out;
      s.gb[s.pos] = encrypt ? out : in;
    }
    if (s.pos < 16) return;
    ghashBlock(s, s.gb);
    s.pos = 0;
  }
  for (; n - i >= 512; i += 512) bulk32(s, src + i, dst + i, encrypt);
  for (; n - i >= 256; i += 256) bulk16(s, src + i, dst + i, encrypt);
  for (; n - i >= 16; i += 16) {
    const __m128i in = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i));
    const __m128i out = _mm_xor_si128(in, encryptBlock(s.rk, counterBlock(s)));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i), out);
    s.y = gfmul(_mm_xor_si128(s.y, bswap(encrypt ? out : in)), s.h);
  }
  if (i < n) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(s.ks), encryptBlock(s.rk, counterBlock(s)));
    for (; i < n; i++, s.pos++) {
      const uint8_t in = src[i];
      const uint8_t out = static_cast<uint8_t>(in ^ s.ks[s.pos]);
      dst[i] = out;
      s.gb[s.pos] = encrypt ? out : in;
    }
  }
}

NS_VAES_TARGET static void tag(State& s, uint8_t* out) {
  if (s.pos > 0) {
    std::memset(s.gb + s.pos, 0, 16 - s.pos);
    ghashBlock(s, s.gb);
    s.pos = 0;
  }
  uint8_t len[16];
  const uint64_t a = s.aadBytes * 8;
  const uint64_t c = s.textBytes * 8;
  for (int i = 0; i < 8; i++) {
    len[i] = static_cast<uint8_t>(a >> (56 - 8 * i));
    len[8 + i] = static_cast<uint8_t>(c >> (56 - 8 * i));
  }
  ghashBlock(s, len);
  _mm_storeu_si128(reinterpret_cast<__m128i*>(out), _mm_xor_si128(bswap(s.y), s.ej0));
  OPENSSL_cleanse(s.ks, sizeof(s.ks));
  OPENSSL_cleanse(s.gb, sizeof(s.gb));
}

// The CPU (and the OS: AVX-512 state) has everything this kernel uses.
bool supported() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("aes") && __builtin_cpu_supports("pclmul") && __builtin_cpu_supports("avx512f") &&
         __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("vaes") &&
         __builtin_cpu_supports("vpclmulqdq");
}

}  // namespace vgcm
#pragma GCC diagnostic pop
#endif
}  // namespace

namespace {

constexpr size_t kKeyBytes = 32;
constexpr size_t kIvBytes = 12;
constexpr size_t kTagBytes = 16;

struct Bytes {
  uint8_t* data;
  size_t length;
};

// An optional byte offset argument (default 0): an integer in [0, 2^31).
size_t offsetOf(const Napi::Env& env, const Napi::CallbackInfo& info, size_t i) {
  if (info.Length() <= i || info[i].IsUndefined()) return 0;
  if (!info[i].IsNumber()) throw Napi::TypeError::New(env, "offset must be a number");
  double d = info[i].As<Napi::Number>().DoubleValue();
  if (!(d >= 0 && d < 2147483648.0) || d != static_cast<double>(static_cast<int64_t>(d))) throw Napi::RangeError::New(env, "offset out of range");
  return static_cast<size_t>(d);
}

Bytes bytesOf(const Napi::Env& env, const Napi::Value& v, const char* what) {
  if (!v.IsTypedArray()) throw Napi::TypeError::New(env, std::string(what) + " must be a Uint8Array");
  auto t = v.As<Napi::TypedArray>();
  if (t.TypedArrayType() != napi_uint8_array) throw Napi::TypeError::New(env, std::string(what) + " must be a Uint8Array");
  auto u = t.As<Napi::Uint8Array>();
  return Bytes{u.Data(), u.ByteLength()};
}

class GcmContext : public Napi::ObjectWrap<GcmContext> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "GcmContext",
                       {InstanceMethod("begin", &GcmContext::Begin), InstanceMethod("update", &GcmContext::Update),
                        InstanceMethod("finishEncrypt", &GcmContext::FinishEncrypt),
                        InstanceMethod("finishDecrypt", &GcmContext::FinishDecrypt), InstanceMethod("kernel", &GcmContext::Kernel)});
  }

  GcmContext(const Napi::CallbackInfo& info) : Napi::ObjectWrap<GcmContext>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 2 || info.Length() > 3 || !info[1].IsBoolean()) throw Napi::TypeError::New(env, "GcmContext(key, encrypt, kernel)");
    Bytes key = bytesOf(env, info[0], "key");
    if (key.length != kKeyBytes) throw Napi::RangeError::New(env, "key must be 32 bytes");
    encrypt_ = info[1].As<Napi::Boolean>().Value();
    // kernel: "auto" (default: the VAES kernel where the CPU has it) or "openssl"
    std::string kernel = "auto";
    if (info.Length() == 3 && !info[2].IsUndefined()) {
      if (!info[2].IsString()) throw Napi::TypeError::New(env, "kernel must be a string");
      kernel = info[2].As<Napi::String>().Utf8Value();
      if (kernel != "auto" && kernel != "openssl") throw Napi::RangeError::New(env, "kernel must be \"auto\" or \"openssl\"");
    }
#ifdef NEUROSHARD_HAVE_VAES_KERNEL
    if (kernel == "auto" && vaesSupported()) {
      vaes_ = new vgcm::State();
      vgcm::init(*vaes_, key.data);
      return;
    }
#endif
    ctx_ = EVP_CIPHER_CTX_new();
    if (ctx_ == nullptr) throw Napi::Error::New(env, "EVP_CIPHER_CTX_new failed");
    // the cipher and key once (the key schedule is kept); a 12-byte IV is GCM's default length
    int ok = encrypt_ ? EVP_EncryptInit_ex(ctx_, EVP_aes_256_gcm(), nullptr, key.data, nullptr)
                      : EVP_DecryptInit_ex(ctx_, EVP_aes_256_gcm(), nullptr, key.data, nullptr);
    if (ok != 1) throw Napi::Error::New(env, "AES-256-GCM init failed");
  }

  ~GcmContext() override {
    if (ctx_ != nullptr) EVP_CIPHER_CTX_free(ctx_);  // also wipes the key schedule
#ifdef NEUROSHARD_HAVE_VAES_KERNEL
    if (vaes_ != nullptr) {
      OPENSSL_cleanse(vaes_, sizeof(*vaes_));
      delete vaes_;
    }
#endif
  }

  static bool vaesSupported() {
#ifdef NEUROSHARD_HAVE_VAES_KERNEL
    static const bool yes = vgcm::supported();
    return yes;
#else
    return false;
#endif
  }

 private:
  // begin(iv, aad)
  Napi::Value Begin(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() != 2) throw Napi::TypeError::New(env, "begin(iv, aad)");
    Bytes iv = bytesOf(env, info[0], "iv");
    Bytes aad = bytesOf(env, info[1], "aad");
    if (iv.length != kIvBytes) throw Napi::RangeError::New(env, "iv must be 12 bytes");
    if (aad.length > 1024) throw Napi::RangeError::New(env, "aad over 1 KiB");
    inFrame_ = false;
#ifdef NEUROSHARD_HAVE_VAES_KERNEL
    if (vaes_ != nullptr) {
      vgcm::begin(*vaes_, iv.data, aad.data, aad.length);
      inFrame_ = true;
      return env.Undefined();
    }
#endif
    int outl = 0;
    // only the IV: the key schedule set in the constructor stays
    int ok = encrypt_ ? EVP_EncryptInit_ex(ctx_, nullptr, nullptr, nullptr, iv.data) : EVP_DecryptInit_ex(ctx_, nullptr, nullptr, nullptr, iv.data);
    if (ok != 1) throw Napi::Error::New(env, "GCM IV init failed");
    if (aad.length > 0) {
      ok = encrypt_ ? EVP_EncryptUpdate(ctx_, nullptr, &outl, aad.data, static_cast<int>(aad.length))
                    : EVP_DecryptUpdate(ctx_, nullptr, &outl, aad.data, static_cast<int>(aad.length));
      if (ok != 1) throw Napi::Error::New(env, "GCM AAD failed");
    }
    inFrame_ = true;
    return env.Undefined();
  }

  // update(src, dst, at): src.length bytes into dst[at..]; dst may be src (GCM is a stream cipher: in place is fine)
  Napi::Value Update(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 2 || info.Length() > 3) throw Napi::TypeError::New(env, "update(src, dst, at)");
    if (!inFrame_) throw Napi::Error::New(env, "update outside a frame");
    Bytes src = bytesOf(env, info[0], "src");
    Bytes dst = bytesOf(env, info[1], "dst");
    size_t at = offsetOf(env, info, 2);
    if (at > dst.length || dst.length - at < src.length) throw Napi::RangeError::New(env, "dst shorter than src");
    dst.data += at;
    if (src.length > (1u << 30)) throw Napi::RangeError::New(env, "src over 1 GiB");
    // partial overlap would corrupt the output: only exactly in place or disjoint
    if (src.length > 0 && dst.data != src.data && dst.data < src.data + src.length && src.data < dst.data + src.length) {
      throw Napi::RangeError::New(env, "src and dst overlap");
    }
    if (src.length == 0) return env.Undefined();
#ifdef NEUROSHARD_HAVE_VAES_KERNEL
    if (vaes_ != nullptr) {
      vgcm::update(*vaes_, src.data, dst.data, src.length, encrypt_);
      return env.Undefined();
    }
#endif
    int outl = 0;
    int ok = encrypt_ ? EVP_EncryptUpdate(ctx_, dst.data, &outl, src.data, static_cast<int>(src.length))
                      : EVP_DecryptUpdate(ctx_, dst.data, &outl, src.data, static_cast<int>(src.length));
    if (ok != 1 || static_cast<size_t>(outl) != src.length) {
      inFrame_ = false;
      throw Napi::Error::New(env, "GCM update failed");
    }
    return env.Undefined();
  }

  Napi::Value FinishEncrypt(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!encrypt_) throw Napi::Error::New(env, "finishEncrypt on a decrypting context");
    if (!inFrame_) throw Napi::Error::New(env, "finishEncrypt outside a frame");
    if (info.Length() < 1 || info.Length() > 2) throw Napi::TypeError::New(env, "finishEncrypt(dst, at)");
    Bytes tag = bytesOf(env, info[0], "dst");
    size_t at = offsetOf(env, info, 1);
    if (at > tag.length || tag.length - at < kTagBytes) throw Napi::RangeError::New(env, "no room for the 16-byte tag");
    tag.data += at;
    inFrame_ = false;
#ifdef NEUROSHARD_HAVE_VAES_KERNEL
    if (vaes_ != nullptr) {
      vgcm::tag(*vaes_, tag.data);
      return env.Undefined();
    }
#endif
    uint8_t none[16];
    int outl = 0;
    if (EVP_EncryptFinal_ex(ctx_, none, &outl) != 1) throw Napi::Error::New(env, "GCM final failed");
    if (EVP_CIPHER_CTX_ctrl(ctx_, EVP_CTRL_GCM_GET_TAG, static_cast<int>(kTagBytes), tag.data) != 1) throw Napi::Error::New(env, "GCM tag failed");
    return env.Undefined();
  }

  Napi::Value FinishDecrypt(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (encrypt_) throw Napi::Error::New(env, "finishDecrypt on an encrypting context");
    if (!inFrame_) throw Napi::Error::New(env, "finishDecrypt outside a frame");
    if (info.Length() < 1 || info.Length() > 2) throw Napi::TypeError::New(env, "finishDecrypt(tag, at)");
    Bytes tag = bytesOf(env, info[0], "tag");
    size_t at = offsetOf(env, info, 1);
    if (at > tag.length || tag.length - at < kTagBytes) throw Napi::RangeError::New(env, "tag must be 16 bytes");
    tag.data += at;
    inFrame_ = false;
#ifdef NEUROSHARD_HAVE_VAES_KERNEL
    if (vaes_ != nullptr) {
      uint8_t computed[kTagBytes];
      vgcm::tag(*vaes_, computed);
      // constant time (OpenSSL's comparison), true only when all 16 bytes match
      const bool ok = CRYPTO_memcmp(computed, tag.data, kTagBytes) == 0;
      OPENSSL_cleanse(computed, sizeof(computed));
      return Napi::Boolean::New(env, ok);
    }
#endif
    uint8_t expected[kTagBytes];
    std::memcpy(expected, tag.data, kTagBytes);  // OpenSSL keeps its own copy; ours is not changed under it
    if (EVP_CIPHER_CTX_ctrl(ctx_, EVP_CTRL_GCM_SET_TAG, static_cast<int>(kTagBytes), expected) != 1) throw Napi::Error::New(env, "GCM set tag failed");
    uint8_t none[16];
    int outl = 0;
    // constant-time tag comparison inside OpenSSL; > 0 only when the tag verifies
    return Napi::Boolean::New(env, EVP_DecryptFinal_ex(ctx_, none, &outl) > 0);
  }

  // "vaes512" or "openssl": the kernel this context runs
  Napi::Value Kernel(const Napi::CallbackInfo& info) {
    return Napi::String::New(info.Env(), ctx_ == nullptr ? "vaes512" : "openssl");
  }

  EVP_CIPHER_CTX* ctx_ = nullptr;
#ifdef NEUROSHARD_HAVE_VAES_KERNEL
  vgcm::State* vaes_ = nullptr;
#endif
  bool encrypt_ = true;
  bool inFrame_ = false;
};

Napi::Object InitModule(Napi::Env env, Napi::Object exports) {
  exports.Set("GcmContext", GcmContext::Init(env));
  exports.Set("openssl", Napi::String::New(env, OPENSSL_VERSION_TEXT));
  exports.Set("vaes", Napi::Boolean::New(env, GcmContext::vaesSupported()));
  return exports;
}

}  // namespace

#else  // no OpenSSL headers: an empty module (the lane falls back to node:crypto)

namespace {
Napi::Object InitModule(Napi::Env env, Napi::Object exports) {
  exports.Set("openssl", env.Null());
  return exports;
}
}  // namespace

#endif

NODE_API_MODULE(neuroshard_aead, InitModule)
