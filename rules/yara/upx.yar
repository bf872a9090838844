// An ELF packed with UPX: the packer's `UPX!` magic sits in the loader's header, right after
// the ELF program headers. Packing hides the code from static inspection; legitimate builds
// use it too, hence a medium severity.

rule Vigil_ELF_UPX_Packed : attack_stealth attack_t1027_002
{
    meta:
        description = "ELF executable packed with UPX"
        severity = "medium"
        author = "Vigil"
    strings:
        $upx_magic = "UPX!"
    condition:
        uint32(0) == 0x464c457f and $upx_magic in (0..1024)
}
