// The EICAR anti-virus test file: proves that scanning works end to end, harmlessly.
// The pattern below escapes its backslash, so this file is not itself the test string.

rule Vigil_EICAR_Test_File : test
{
    meta:
        description = "EICAR anti-virus test file"
        severity = "low"
        author = "Vigil"
        reference = "https://www.eicar.org/download-anti-malware-testfile/"
    strings:
        $eicar = "X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
    condition:
        // The file starts with the string; only whitespace may follow (128 bytes at most).
        $eicar at 0 and filesize <= 128
}
