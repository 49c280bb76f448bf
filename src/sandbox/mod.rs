//! A local simulator of the CryptoPocket API (wire contract §13).
