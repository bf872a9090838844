// Cryptocurrency miners of the XMRig family (and configurations for them): a mining-pool URL
// together with a miner's own settings.

rule Vigil_Coin_Miner_XMRig_Like : attack_impact attack_t1496_001
{
    meta:
        description = "Cryptocurrency miner (XMRig-like): mining pool URL and miner settings"
        severity = "high"
        author = "Vigil"
    strings:
        $pool_tcp = "stratum+tcp://" ascii wide
        $pool_ssl = "stratum+ssl://" ascii wide
        $pool_v2 = "stratum2+tcp://" ascii wide
        $donate_json = "\"donate-level\"" ascii wide
        $donate_flag = "--donate-level" ascii wide
        $algo_rx = "rx/0" ascii wide fullword
        $algo_cn = "cryptonight" ascii wide nocase
        $randomx = "randomx" ascii wide nocase
        $nicehash = "\"nicehash\"" ascii wide
    condition:
        any of ($pool_*) and 2 of ($donate_*, $algo_*, $randomx, $nicehash)
}
