namespace PipeTransport.Bridge;

/// <summary>How bytes move between the two addresses.</summary>
internal enum Engine
{
    /// <summary>splice where both ends of a direction are pipes or sockets (sendfile from a regular file to one), copy otherwise.</summary>
    Auto,
    /// <summary>Kernel-side moves with splice(2) (through an intermediate pipe when neither end is a pipe), or sendfile(2) from a regular file.</summary>
    Splice,
    /// <summary>Through FdConnection pipes (user-space copy).</summary>
    Copy,
}
