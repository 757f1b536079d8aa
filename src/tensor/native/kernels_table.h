// The kernel table of one ISA path; included by isa_*.cc right after kernels_impl.h, still inside the target region
// (it is constant data: no code is generated here).
namespace ns {
namespace NS_ISA_NS {
static const Kernels kTable = {
    static_cast<Isa>(NS_ISA_ENUM), NS_ISA_NAME, MR, NR, static_cast<int>(KC), static_cast<int>(MC), static_cast<int>(NC),
    gemm_ws, gemm_block, gemm_small,
    q8_gemm_small, q8_quant_act, q8_decode_rows,
    k_add, k_axpy, k_scale, k_sumsq, k_allfinite, k_swiglu_fwd, k_swiglu_bwd, k_adamw, k_to_fp16, k_from_fp16, k_q8, k_dq8,
    k_embed_fwd, k_embed_bwd, k_rms_fwd, k_rms_bwd_dx, k_rms_bwd_dw, k_rope, k_xent,
    attn_fwd_ws, attn_fwd_tasks, attn_fwd, attn_bwd_ws, attn_bwd_tasks, attn_bwd, decode_ws, attn_decode,
};
}  // namespace NS_ISA_NS
}  // namespace ns
