namespace PipeTransport.Bridge;

/// <summary>The parsed command line.</summary>
internal sealed record BridgeOptions(
    Address First,
    Address Second,
    bool Unidirectional,
    int BlockSize,
    bool Fork,
    bool Stats,
    bool Verbose,
    Engine Engine)
{
    public const int DefaultBlockSize = 64 * 1024;
}
