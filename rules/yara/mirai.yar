// Mirai-like IoT bots: an ELF holding the strings such a bot needs to keep its device (the
// watchdog), recognise its loader (busybox with a bot tag) and flood (game-server and HTTP
// floods), several at once.

rule Vigil_Linux_Mirai_Like_Bot : attack_impact attack_t1498 attack_credential_access attack_t1110_001
{
    meta:
        description = "Mirai-like IoT bot: watchdog, busybox tag and flood strings in one ELF"
        severity = "critical"
        author = "Vigil"
    strings:
        $watchdog = "/dev/watchdog" ascii
        $watchdog_misc = "/dev/misc/watchdog" ascii
        // A loader checks its foothold by running busybox with the bot's name as the applet.
        $busybox_tag = /\/bin\/busybox [A-Z]{4,12}\b/ ascii
        $flood_source_engine = "TSource Engine Query" ascii
        $flood_http_cdn = "/cdn-cgi/" ascii
        $proc_net_tcp = "/proc/net/tcp" ascii
        $telnet_enable = "enable\x00system\x00shell\x00sh\x00" ascii
    condition:
        uint32(0) == 0x464c457f and filesize < 5MB
        and any of ($watchdog*) and $busybox_tag
        and 2 of ($flood_*, $proc_net_tcp, $telnet_enable)
}
