namespace PipeTransport.Bridge;

/// <summary>What the bridge does with an opened address.</summary>
[Flags]
internal enum Role
{
    Read = 1,
    Write = 2,
    Both = Read | Write,
}
