namespace PipeTransport.Connection;

/// <summary>What an fd refers to, from <c>fstat</c>; it decides how a direction is half-closed.</summary>
internal enum FdKind
{
    Other,
    Pipe,
    Socket,
    CharacterDevice,
    RegularFile,
    Directory,
}
