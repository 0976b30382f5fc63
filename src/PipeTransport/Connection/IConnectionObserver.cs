namespace PipeTransport.Connection;

/// <summary>
/// What a connection tells the one observer it may have (the Kestrel plug-in logs these as Kestrel's
/// Sockets transport does). Called on the connection's loops and on the thread that aborts, at most a
/// few times per connection (a pause per backpressure stall): an observer must not block or throw.
/// </summary>
internal interface IConnectionObserver
{
    /// <summary>The receive loop stopped reading: Input holds its pause threshold unconsumed.</summary>
    void InputPaused();

    /// <summary>The application consumed enough of Input: the receive loop reads again.</summary>
    void InputResumed();

    /// <summary>The peer closed its side: Input read EOF.</summary>
    void ReadFin();

    /// <summary>The peer reset the connection or stopped reading (<see cref="FdConnectionResetException"/>), seen by either loop.</summary>
    void Reset(Exception error);

    /// <summary>Another I/O error ended a direction.</summary>
    void Error(Exception error);

    /// <summary>
    /// The send side ends towards the peer: after the last byte of a completed Output (<paramref name="reason"/>
    /// null), or at an abort (its reason). A socket then sends FIN (<c>shutdown</c>); a pipe's write end closes.
    /// </summary>
    void SendingFin(Exception? reason);
}
