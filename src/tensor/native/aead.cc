// A third, tiny addon (`neuroshard_aead`): AES-256-GCM contexts that live as long as a lane's direction, for the
// direct data lane's sealed frames (src/p2p/lane/aead.ts, docs/PROTOCOL.md "Direct data lane").
//
// Why: Node's crypto has no reusable GCM context; `createCipheriv` per frame costs 8-10 us on this machine (a key
// schedule, a JS object and its native handle, four per small round trip), more than the cipher work on a 3 KiB
// frame. Here one EVP_CIPHER_CTX per direction is keyed once and re-initialised with only the IV for each frame.
// The cipher is OpenSSL's, the one the `node` binary itself carries and exports (EVP_* symbols; headers from
// Node's include dir, <node>/include/node/openssl): no AES or GHASH of our own, no library linked.
//
// Use from JS (one object per direction; every call synchronous, on the caller's thread):
//   const c = new GcmContext(key /* 32 bytes */, encrypt /* bool */)
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
#include <openssl/evp.h>

#include <cstdint>
#include <cstring>

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
                        InstanceMethod("finishDecrypt", &GcmContext::FinishDecrypt)});
  }

  GcmContext(const Napi::CallbackInfo& info) : Napi::ObjectWrap<GcmContext>(info) {
    Napi::Env env = info.Env();
    if (info.Length() != 2 || !info[1].IsBoolean()) throw Napi::TypeError::New(env, "GcmContext(key, encrypt)");
    Bytes key = bytesOf(env, info[0], "key");
    if (key.length != kKeyBytes) throw Napi::RangeError::New(env, "key must be 32 bytes");
    encrypt_ = info[1].As<Napi::Boolean>().Value();
    ctx_ = EVP_CIPHER_CTX_new();
    if (ctx_ == nullptr) throw Napi::Error::New(env, "EVP_CIPHER_CTX_new failed");
    // the cipher and key once (the key schedule is kept); a 12-byte IV is GCM's default length
    int ok = encrypt_ ? EVP_EncryptInit_ex(ctx_, EVP_aes_256_gcm(), nullptr, key.data, nullptr)
                      : EVP_DecryptInit_ex(ctx_, EVP_aes_256_gcm(), nullptr, key.data, nullptr);
    if (ok != 1) throw Napi::Error::New(env, "AES-256-GCM init failed");
  }

  ~GcmContext() override {
    if (ctx_ != nullptr) EVP_CIPHER_CTX_free(ctx_);  // also wipes the key schedule
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
    uint8_t expected[kTagBytes];
    std::memcpy(expected, tag.data, kTagBytes);  // OpenSSL keeps its own copy; ours is not changed under it
    if (EVP_CIPHER_CTX_ctrl(ctx_, EVP_CTRL_GCM_SET_TAG, static_cast<int>(kTagBytes), expected) != 1) throw Napi::Error::New(env, "GCM set tag failed");
    uint8_t none[16];
    int outl = 0;
    // constant-time tag comparison inside OpenSSL; > 0 only when the tag verifies
    return Napi::Boolean::New(env, EVP_DecryptFinal_ex(ctx_, none, &outl) > 0);
  }

  EVP_CIPHER_CTX* ctx_ = nullptr;
  bool encrypt_ = true;
  bool inFrame_ = false;
};

Napi::Object InitModule(Napi::Env env, Napi::Object exports) {
  exports.Set("GcmContext", GcmContext::Init(env));
  exports.Set("openssl", Napi::String::New(env, OPENSSL_VERSION_TEXT));
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
