namespace PipeTransport.Bridge;

/// <summary>Process exit codes (documented in --help).</summary>
internal static class ExitCodes
{
    public const int Success = 0;
    public const int IoError = 1;
    public const int Usage = 2;
    public const int Interrupted = 130;
    public const int Terminated = 143;
}
