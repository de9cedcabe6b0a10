// SPDX-License-Identifier: GPL-2.0
//
// kcovdf-dataflow: SanitizerCoverage's trace-args / trace-ret, as an LLVM 19 pass plugin.
//
// The Linux series patches clang with -fsanitize-coverage=trace-args,trace-ret; no
// released LLVM has them. This plugin places the same callbacks, with the kernel's names
// and arguments (docs/native.md, "The pass"):
//
//   __sanitizer_cov_trace_args(pc, arg_idx, arg_size, arg_ptr, offsets, num_fields)
//       one per parameter, at entry
//   __sanitizer_cov_trace_ret(pc, ret_size, ret_ptr, offsets, num_fields)
//       before every return
//
// skipping functions without a DISubprogram, variadic and naked functions, and the
// runtime. Scalars are spilled to the stack and passed by address; struct pointers are
// passed as they are, with a constant table decomposing the struct from the debug info.
// kcovdf's table (the kernel's has only the hash and (offset, size) pairs) is
//
//   [0] shape id: FNV-1a of "native.<type name>\0<field>\0<field>..." (the type name's
//       hash, with its field names, so it is the kcovdf shape id of docs/abi.md §2.3)
//   [1] the kcovdf layout word (total | form | field kinds) the record carries
//   [2] flags: bit 0 the argument points to the value (read it without faulting)
//   [3..] one word per field: byte offset << 32 | kind << 28 | signed << 27 |
//         bitfield << 26 | bit shift << 20 | bit width << 12 | byte size
//
// and the field names and kinds go into the trace's type table (the module descriptor
// registered by a constructor), so readers print pair(a=0x11, b=0x22).
//
// Beyond the kernel (off with -kcovdf-kernel-abi): a function without parameters gets
// one entry callback with arg_idx 0xFD (kcovdf's ARG_NONE) and a void function a
// trace_ret of size 0, so every call has an entry and an exit and calls pair in a stream
// mixed with Python's; and a guard in front of the callbacks (one load of the runtime's
// "anyone recording" word) so that code pays a branch while nobody records.
//
// What it cannot instrument it names, with the function's line, and leaves alone.

#include "llvm/ADT/SmallString.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/BinaryFormat/Dwarf.h"
#include "llvm/IR/DebugInfoMetadata.h"
#include "llvm/IR/DebugProgramInstruction.h"
#include "llvm/IR/IRBuilder.h"
#include "llvm/IR/InstIterator.h"
#include "llvm/IR/Instructions.h"
#include "llvm/IR/IntrinsicInst.h"
#include "llvm/IR/MDBuilder.h"
#include "llvm/IR/Module.h"
#include "llvm/IR/PassManager.h"
#include "llvm/Passes/PassBuilder.h"
#include "llvm/Passes/PassPlugin.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/GlobPattern.h"
#include "llvm/Support/raw_ostream.h"
#include "llvm/Transforms/Utils/BasicBlockUtils.h"
#include "llvm/Transforms/Utils/ModuleUtils.h"

#include <map>
#include <string>
#include <vector>

using namespace llvm;

static cl::opt<bool> OptArgs("kcovdf-args", cl::init(true),
                             cl::desc("kcovdf: place trace_args callbacks (CONFIG_KCOV_DATAFLOW_ARGS)"));
static cl::opt<bool> OptRet("kcovdf-ret", cl::init(true),
                            cl::desc("kcovdf: place trace_ret callbacks (CONFIG_KCOV_DATAFLOW_RET)"));
static cl::list<std::string> OptAllow("kcovdf-allow", cl::CommaSeparated,
                                      cl::desc("kcovdf: instrument only these functions (globs)"));
static cl::list<std::string> OptDeny("kcovdf-deny", cl::CommaSeparated,
                                     cl::desc("kcovdf: never instrument these functions (globs)"));
static cl::opt<bool> OptKernelAbi("kcovdf-kernel-abi", cl::init(false),
                                  cl::desc("kcovdf: exactly the kernel's placement: no guard, no "
                                           "module registration, no ARG_NONE entry or void return"));

namespace {

// docs/abi.md: kinds, forms, ARG_NONE
enum : unsigned { KIND_NONE = 0, KIND_INT = 1, KIND_BOOL = 3, KIND_FLOAT = 4 };
enum : unsigned { FORM_SCALAR = 0, FORM_OBJECT = 6 };
constexpr unsigned ARG_NONE = 0xFD;
constexpr unsigned MAX_FIELDS = 13;
constexpr uint64_t FLAG_INDIRECT = 1;

uint64_t fnv1a(StringRef s, uint64_t h = 0xCBF29CE484222325ull) {
  for (unsigned char c : s)
    h = (h ^ c) * 0x100000001B3ull;
  return h;
}

std::string jsonStr(StringRef s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (c < 0x20) {
      char buf[8];
      snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

std::string hex(uint64_t v) {
  char buf[24];
  snprintf(buf, sizeof buf, "0x%llx", (unsigned long long)v);
  return buf;
}

// One field of a decomposed value (or the one word of a scalar).
struct Field {
  std::string name;
  uint64_t offset = 0, size = 8;
  unsigned kind = KIND_INT;
  bool isSigned = false, bitfield = false;
  unsigned shift = 0, width = 0;

  uint64_t word() const {
    return offset << 32 | (uint64_t)kind << 28 | (uint64_t)isSigned << 27 |
           (uint64_t)bitfield << 26 | (uint64_t)(shift & 63) << 20 | (uint64_t)(width & 127) << 12 |
           (size & 0xFFF);
  }
};

// How one argument or return value is read: a scalar class, or a struct's fields.
struct ValueDesc {
  std::string cls;           // "native.u64", "native.pair"
  std::vector<Field> fields; // one for a scalar
  unsigned total = 1;        // members of a struct (the recorded ones are the first 13)
  bool object = false;       // decomposed struct (FORM_OBJECT)
  bool indirect = false;     // the argument points to the value
  uint64_t size = 8;         // bytes of the value (a struct's whole size)

  uint64_t shape() const {
    if (!object)
      return fnv1a(cls);
    std::string key = cls;
    for (auto &f : fields) {
      key += '\0';
      key += f.name;
    }
    return fnv1a(key);
  }
  uint64_t layout() const {
    uint64_t kinds = 0;
    for (size_t j = 0; j < fields.size(); j++)
      kinds |= (uint64_t)fields[j].kind << (4 * j);
    uint64_t t = total > 255 ? 255 : total;
    return t << 56 | (uint64_t)(object ? FORM_OBJECT : FORM_SCALAR) << 52 | kinds;
  }
  std::string typeLine() const {
    std::string line = "{\"t\":\"type\",\"id\":\"" + hex(shape()) + "\",\"class\":" + jsonStr(cls) +
                       ",\"fields\":[";
    if (object)
      for (size_t j = 0; j < fields.size(); j++)
        line += (j ? "," : "") + jsonStr(fields[j].name);
    return line + "]}";
  }
};

const DIType *strip(const DIType *T, std::string *typedefName = nullptr) {
  while (auto *D = dyn_cast_or_null<DIDerivedType>(T)) {
    unsigned tag = D->getTag();
    if (tag == dwarf::DW_TAG_typedef) {
      if (typedefName && typedefName->empty())
        *typedefName = D->getName().str();
    } else if (tag != dwarf::DW_TAG_const_type && tag != dwarf::DW_TAG_volatile_type &&
               tag != dwarf::DW_TAG_restrict_type && tag != dwarf::DW_TAG_atomic_type) {
      break;
    }
    T = D->getBaseType();
  }
  return T;
}

bool isStruct(const DIType *T) {
  auto *C = dyn_cast_or_null<DICompositeType>(T);
  return C && (C->getTag() == dwarf::DW_TAG_structure_type || C->getTag() == dwarf::DW_TAG_class_type) &&
         !C->isForwardDecl() && C->getElements().size() > 0;
}

bool isPointer(const DIType *T) {
  auto *D = dyn_cast_or_null<DIDerivedType>(T);
  return D && (D->getTag() == dwarf::DW_TAG_pointer_type || D->getTag() == dwarf::DW_TAG_reference_type ||
               D->getTag() == dwarf::DW_TAG_rvalue_reference_type);
}

// The scalar field of a (stripped) type: its kind, signedness and class name.
Field scalarOf(const DIType *T, uint64_t bytes, std::string &cls) {
  Field f;
  f.size = bytes ? bytes : 8;
  if (f.size > 8)
    f.size = 8; // the runtime reads at most 8 bytes of a scalar (wider ones are cut)
  std::string bits = std::to_string(f.size * 8);
  if (auto *B = dyn_cast_or_null<DIBasicType>(T)) {
    switch (B->getEncoding()) {
    case dwarf::DW_ATE_signed:
    case dwarf::DW_ATE_signed_char:
      f.isSigned = true;
      cls = "native.i" + bits;
      return f;
    case dwarf::DW_ATE_boolean:
      f.kind = KIND_BOOL;
      cls = "native.bool";
      return f;
    case dwarf::DW_ATE_float:
      if (f.size == 4 || f.size == 8) {
        f.kind = KIND_FLOAT;
        cls = "native.f" + bits;
        return f;
      }
      break;
    default:
      break;
    }
  }
  if (isPointer(T) || (T && T->getTag() == dwarf::DW_TAG_subroutine_type)) {
    cls = "native.ptr";
    return f;
  }
  if (auto *C = dyn_cast_or_null<DICompositeType>(T))
    if (C->getTag() == dwarf::DW_TAG_enumeration_type) {
      std::string s;
      const DIType *base = strip(C->getBaseType());
      if (auto *B = dyn_cast_or_null<DIBasicType>(base))
        f.isSigned = B->getEncoding() == dwarf::DW_ATE_signed;
      cls = (f.isSigned ? "native.i" : "native.u") + bits;
      return f;
    }
  cls = "native.u" + bits;
  return f;
}

// Decompose a struct type into fields (one level, the first 13 members, as the kernel).
void structOf(const DICompositeType *C, const std::string &name, ValueDesc &d) {
  d.object = true;
  d.cls = "native." + (name.empty() ? std::string("struct") : name);
  d.size = C->getSizeInBits() / 8;
  d.total = 0;
  for (auto *E : C->getElements()) {
    auto *M = dyn_cast_or_null<DIDerivedType>(E);
    if (!M || M->getTag() != dwarf::DW_TAG_member || M->isStaticMember())
      continue;
    d.total++;
    if (d.fields.size() >= MAX_FIELDS)
      continue;
    std::string ignored;
    const DIType *MT = strip(M->getBaseType());
    Field f;
    uint64_t bits = M->getSizeInBits(), off = M->getOffsetInBits();
    if (M->isBitField()) {
      f = scalarOf(MT, 8, ignored);
      f.kind = f.kind == KIND_BOOL ? KIND_BOOL : KIND_INT;
      f.bitfield = true;
      f.offset = off / 8;
      f.shift = off % 8;
      f.width = bits > 56 ? 56 : bits;
      f.size = (f.shift + f.width + 7) / 8;
    } else if (isStruct(MT) || (MT && isa<DICompositeType>(MT) &&
                                MT->getTag() != dwarf::DW_TAG_enumeration_type)) {
      // a nested struct, union or array: one entry, its first 8 bytes
      f.size = bits / 8 > 8 ? 8 : (bits / 8 ? bits / 8 : 1);
      f.offset = off / 8;
    } else {
      f = scalarOf(MT, bits / 8, ignored);
      f.offset = off / 8;
    }
    f.name = M->getName().str();
    if (f.name.empty()) // an anonymous union or struct: named by its first member (ob_refcnt)
      if (auto *A = dyn_cast_or_null<DICompositeType>(MT))
        for (auto *E2 : A->getElements())
          if (auto *M2 = dyn_cast_or_null<DIDerivedType>(E2); M2 && !M2->getName().empty()) {
            f.name = M2->getName().str();
            break;
          }
    if (f.name.empty())
      f.name = "_" + std::to_string(d.total - 1);
    d.fields.push_back(f);
  }
  if (d.fields.empty()) {
    d.object = false;
    d.cls = "native.u64";
    d.fields.push_back(Field());
  }
}

// How a value of debug type T, held in IR as type Ty, is recorded. Null T: no debug type.
ValueDesc describe(const DIType *T, Type *Ty, const DataLayout &DL, bool byvalPtr) {
  ValueDesc d;
  std::string name;
  const DIType *S = strip(T, &name);
  uint64_t irBytes = Ty->isSized() ? DL.getTypeStoreSize(Ty).getFixedValue() : 8;
  if (S && isPointer(S)) {
    std::string pname;
    const DIType *P = strip(cast<DIDerivedType>(S)->getBaseType(), &pname);
    if (isStruct(P)) {
      auto *C = cast<DICompositeType>(P);
      structOf(C, C->getName().empty() ? pname : C->getName().str(), d);
      d.indirect = true;
      return d;
    }
  }
  if (S && isStruct(S)) {
    auto *C = cast<DICompositeType>(S);
    std::string sname = C->getName().empty() ? name : C->getName().str();
    if (byvalPtr) { // a struct passed in memory (byval) or returned through sret
      structOf(C, sname, d);
      d.indirect = true;
      return d;
    }
    if (irBytes >= C->getSizeInBits() / 8) { // coerced into registers: spilled, same layout
      structOf(C, sname, d);
      return d;
    }
  }
  std::string cls;
  uint64_t bytes = S && S->getSizeInBits() ? S->getSizeInBits() / 8 : irBytes;
  if (bytes > irBytes)
    bytes = irBytes;
  if (!S && Ty->isPointerTy()) {
    cls = "native.ptr";
    Field f;
    d.fields.push_back(f);
  } else if (!S && Ty->isFloatingPointTy() && (irBytes == 4 || irBytes == 8)) {
    Field f;
    f.kind = KIND_FLOAT;
    f.size = irBytes;
    cls = "native.f" + std::to_string(irBytes * 8);
    d.fields.push_back(f);
  } else {
    d.fields.push_back(scalarOf(S, bytes, cls));
  }
  d.cls = cls;
  d.size = d.fields[0].size;
  return d;
}

struct FuncInfo {
  Function *F;
  std::string json; // the sym line after its pc: "qualname":...}
};

class Instrumenter {
public:
  explicit Instrumenter(Module &M) : M(M), Ctx(M.getContext()), DL(M.getDataLayout()) {
    I8 = Type::getInt8Ty(Ctx);
    I32 = Type::getInt32Ty(Ctx);
    I64 = Type::getInt64Ty(Ctx);
    Ptr = PointerType::getUnqual(Ctx);
    for (auto &p : OptAllow)
      addGlob(p, Allow);
    for (auto &p : OptDeny)
      addGlob(p, Deny);
  }

  bool run() {
    std::vector<Function *> todo;
    for (Function &F : M)
      todo.push_back(&F);
    for (Function *F : todo)
      visit(*F);
    if (noDebug)
      errs() << "kcovdf: note: " << noDebug
             << " function(s) without debug info (no DISubprogram) left uninstrumented: compile with -g\n";
    if (Funcs.empty())
      return Changed;
    if (!OptKernelAbi)
      registerModule();
    return true;
  }

private:
  Module &M;
  LLVMContext &Ctx;
  const DataLayout &DL;
  Type *I8, *I32, *I64;
  PointerType *Ptr;
  std::vector<GlobPattern> Allow, Deny;
  std::vector<FuncInfo> Funcs;
  std::map<std::string, std::string> Types; // type line by shape id
  std::map<std::vector<uint64_t>, GlobalVariable *> Tables;
  FunctionCallee ArgsFn, RetFn;
  GlobalVariable *Active = nullptr;
  unsigned noDebug = 0;
  bool Changed = false;

  void addGlob(const std::string &p, std::vector<GlobPattern> &out) {
    auto G = GlobPattern::create(p);
    if (!G) {
      errs() << "kcovdf: error: bad function pattern '" << p << "': " << toString(G.takeError()) << "\n";
      exit(2);
    }
    out.push_back(std::move(*G));
  }

  static bool matches(const std::vector<GlobPattern> &pats, StringRef a, StringRef b) {
    for (auto &p : pats)
      if (p.match(a) || p.match(b))
        return true;
    return false;
  }

  void warn(const Function &F, const DISubprogram *SP, const Twine &why) {
    errs() << "kcovdf: warning: ";
    if (SP && SP->getFile())
      errs() << SP->getFilename() << ":" << SP->getLine() << ": ";
    errs() << "function '" << F.getName() << "' left uninstrumented: " << why << "\n";
  }

  // The reason F cannot be instrumented (a construct the pass does not handle), or "".
  std::string unsupported(Function &F) {
    for (auto &A : F.args()) {
      if (A.hasInAllocaAttr() || A.hasPreallocatedAttr())
        return "parameter " + std::to_string(A.getArgNo()) + " is inalloca/preallocated";
      if (A.hasSwiftErrorAttr())
        return "parameter " + std::to_string(A.getArgNo()) + " is swifterror";
      if (A.getType()->isVectorTy() && cast<VectorType>(A.getType())->getElementCount().isScalable())
        return "parameter " + std::to_string(A.getArgNo()) + " is a scalable vector";
    }
    for (auto &I : instructions(F)) {
      if (auto *CI = dyn_cast<CallInst>(&I))
        if (CI->isMustTailCall())
          return "a musttail call leaves no place for trace_ret before its return";
      if (isa<CallBrInst>(&I))
        return "callbr (asm goto) is not handled";
    }
    if (F.getReturnType()->isVectorTy() &&
        cast<VectorType>(F.getReturnType())->getElementCount().isScalable())
      return "it returns a scalable vector";
    return "";
  }

  // Parameter names and debug types, by IR argument (null where unknown).
  void paramInfo(Function &F, DISubprogram *SP, std::vector<std::string> &names,
                 std::vector<const DIType *> &types, const DIType *&retType, bool &mismatch) {
    unsigned n = F.arg_size();
    names.assign(n, "");
    types.assign(n, nullptr);
    retType = nullptr;
    mismatch = false;
    std::vector<std::string> srcNames;
    auto note = [&](const DILocalVariable *V) {
      if (!V || !V->getArg() || V->getScope() != SP)
        return;
      unsigned k = V->getArg() - 1;
      if (srcNames.size() <= k)
        srcNames.resize(k + 1);
      if (srcNames[k].empty())
        srcNames[k] = V->getName().str();
    };
    for (auto *N : SP->getRetainedNodes())
      note(dyn_cast<DILocalVariable>(N));
    for (auto &I : instructions(F)) {
      if (auto *DVI = dyn_cast<DbgVariableIntrinsic>(&I))
        note(DVI->getVariable());
      for (DbgVariableRecord &DVR : filterDbgVars(I.getDbgRecordRange()))
        note(DVR.getVariable());
    }
    std::vector<const DIType *> src;
    bool haveTypes = false;
    if (auto *ST = SP->getType()) {
      auto arr = ST->getTypeArray();
      if (arr.size() > 0) {
        haveTypes = true;
        retType = arr[0];
        for (unsigned i = 1; i < arr.size(); i++)
          src.push_back(arr[i]);
      }
    }
    // IR arguments that are source parameters: all but sret
    std::vector<unsigned> irSrc;
    for (auto &A : F.args())
      if (!A.hasStructRetAttr())
        irSrc.push_back(A.getArgNo());
    bool typesFit = haveTypes && src.size() == irSrc.size();
    // names by position only when the IR parameters are the source's (a promoted or split
    // parameter shifts every one after it)
    bool namesFit = srcNames.size() <= irSrc.size() && (!haveTypes || typesFit);
    if (haveTypes && !typesFit)
      mismatch = true;
    for (unsigned k = 0; k < irSrc.size(); k++) {
      unsigned a = irSrc[k];
      if (typesFit)
        types[a] = src[k];
      if (namesFit && k < srcNames.size())
        names[a] = srcNames[k];
    }
  }

  GlobalVariable *table(const ValueDesc &d) {
    std::vector<uint64_t> words{d.shape(), d.layout(), d.indirect ? FLAG_INDIRECT : 0};
    for (auto &f : d.fields)
      words.push_back(f.word());
    auto it = Tables.find(words);
    if (it != Tables.end())
      return it->second;
    Types[hex(d.shape())] = d.typeLine();
    auto *AT = ArrayType::get(I64, words.size());
    std::vector<Constant *> elems;
    for (uint64_t w : words)
      elems.push_back(ConstantInt::get(I64, w));
    auto *G = new GlobalVariable(M, AT, true, GlobalValue::PrivateLinkage, ConstantArray::get(AT, elems),
                                 "__kcovdf_desc");
    G->setUnnamedAddr(GlobalValue::UnnamedAddr::Global);
    G->setAlignment(Align(8));
    Tables[words] = G;
    return G;
  }

  void declareCallbacks() {
    if (ArgsFn)
      return;
    AttributeList attrs =
        AttributeList().addFnAttribute(Ctx, Attribute::NoUnwind);
    ArgsFn = M.getOrInsertFunction("__sanitizer_cov_trace_args", FunctionType::get(
        Type::getVoidTy(Ctx), {I64, I32, I32, Ptr, Ptr, I32}, false), attrs);
    RetFn = M.getOrInsertFunction("__sanitizer_cov_trace_ret", FunctionType::get(
        Type::getVoidTy(Ctx), {I64, I32, Ptr, Ptr, I32}, false), attrs);
    if (!OptKernelAbi) {
      Active = M.getGlobalVariable("__kcovdf_active");
      if (!Active) {
        Active = new GlobalVariable(M, Ptr, false, GlobalValue::ExternalLinkage, nullptr, "__kcovdf_active");
        Active->setVisibility(GlobalValue::HiddenVisibility);
      }
    }
  }

  // The guard, read once at entry: whether anyone records (the runtime's count of
  // recording threads). Its returns use the same answer, so a call that started while
  // nobody recorded writes no orphan exit.
  Value *recording(Instruction *at) {
    IRBuilder<> B(at);
    Value *p = B.CreateLoad(Ptr, Active, "kcovdf.active.p");
    return B.CreateICmpNE(B.CreateLoad(I64, p, "kcovdf.active"), ConstantInt::get(I64, 0), "kcovdf.on");
  }

  // A block that runs only when on (always with -kcovdf-kernel-abi): the terminator to build before.
  Instruction *guarded(Instruction *before, Value *on) {
    if (!on)
      return before;
    MDNode *w = MDBuilder(Ctx).createBranchWeights(1, 1000);
    return SplitBlockAndInsertIfThen(on, before->getIterator(), false, w);
  }

  void visit(Function &F) {
    if (F.isDeclaration() || F.hasAvailableExternallyLinkage())
      return;
    StringRef name = F.getName();
    if (name.starts_with("__sanitizer_cov_") || name.starts_with("__kcovdf_") ||
        name.starts_with("kcovdf_") || F.hasFnAttribute(Attribute::NoSanitizeCoverage) ||
        F.hasFnAttribute(Attribute::DisableSanitizerInstrumentation))
      return; // the runtime, and code that asked not to be instrumented
    DISubprogram *SP = F.getSubprogram();
    if (!SP) {
      noDebug++;
      return;
    }
    StringRef srcName = SP->getName();
    if (!Allow.empty() && !matches(Allow, name, srcName))
      return;
    if (matches(Deny, name, srcName))
      return;
    if (F.isVarArg()) {
      warn(F, SP, "variadic");
      return;
    }
    if (F.hasFnAttribute(Attribute::Naked)) {
      warn(F, SP, "naked");
      return;
    }
    std::string why = unsupported(F);
    if (!why.empty()) {
      warn(F, SP, why);
      return;
    }
    std::vector<std::string> names;
    std::vector<const DIType *> types;
    const DIType *retType;
    bool mismatch;
    paramInfo(F, SP, names, types, retType, mismatch);
    if (mismatch)
      errs() << "kcovdf: note: " << SP->getFilename() << ":" << SP->getLine() << ": function '" << name
             << "': its parameters do not match its debug info (a struct passed in registers?): "
                "recorded as raw IR values, without field decomposition\n";
    if (!SP->getType() || SP->getType()->getTypeArray().size() == 0)
      errs() << "kcovdf: note: " << SP->getFilename() << ":" << SP->getLine() << ": function '" << name
             << "' has no debug types (-gline-tables-only?): recorded without field decomposition\n";
    declareCallbacks();
    instrument(F, SP, names, types, retType);
    forgetPurity(F);
    Changed = true;
  }

  // F calls the runtime now: it is no longer pure, nor free of synchronization, and
  // neither are the calls to it that said so.
  static void forgetPurity(Function &F) {
    F.setMemoryEffects(MemoryEffects::unknown());
    F.removeFnAttr(Attribute::NoSync);
    for (User *U : F.users())
      if (auto *CB = dyn_cast<CallBase>(U))
        if (CB->getCalledFunction() == &F) {
          CB->removeFnAttr(Attribute::Memory);
          CB->removeFnAttr(Attribute::NoSync);
        }
  }

  void instrument(Function &F, DISubprogram *SP, const std::vector<std::string> &names,
                  const std::vector<const DIType *> &types, const DIType *retType) {
    BasicBlock &Entry = F.getEntryBlock();
    Instruction *at = &*Entry.getFirstNonPHIOrDbgOrAlloca();
    DebugLoc loc = DILocation::get(Ctx, SP->getLine(), 0, SP);
    // allocas: static, at the top of the entry block (which keeps its place when split)
    auto newSlot = [&](Type *Ty, const char *what) {
      IRBuilder<> AB(&*F.getEntryBlock().getFirstInsertionPt());
      return AB.CreateAlloca(Ty, nullptr, what);
    };
    Constant *pc = ConstantExpr::getPtrToInt(&F, I64);
    Argument *sret = nullptr;
    for (auto &A : F.args())
      if (A.hasStructRetAttr())
        sret = &A;

    // the return sites, found before any block is split
    std::vector<ReturnInst *> rets;
    for (auto &BB : F)
      if (auto *R = dyn_cast<ReturnInst>(BB.getTerminator()))
        rets.push_back(R);

    std::string params = "[";
    unsigned recorded = 0;
    Value *on = OptKernelAbi ? nullptr : recording(at);
    if (OptArgs) {
      Instruction *term = guarded(at, on);
      IRBuilder<> B(term);
      B.SetCurrentDebugLocation(loc);
      for (auto &A : F.args()) {
        unsigned i = A.getArgNo(), idx = recorded; // arg_idx: the source position (sret is none)
        if (&A == sret)
          continue; // where the result goes, not an argument: its value is written at return
        if (idx > 0xFC)
          break;
        std::string pname = names[i].empty() ? "arg" + std::to_string(idx) : names[i];
        params += std::string(recorded ? "," : "") + "[" + jsonStr(pname) + ",\"NATIVE\"]";
        recorded++;
        Type *Ty = A.getType();
        bool viaPtr = A.hasByValAttr();
        ValueDesc d = describe(types[i], viaPtr ? A.getParamByValType() : Ty, DL, viaPtr);
        Value *ptr;
        if (d.indirect) {
          ptr = &A;
        } else {
          AllocaInst *slot = newSlot(Ty, "kcovdf.arg");
          B.CreateStore(&A, slot);
          ptr = slot;
        }
        uint64_t size = d.object ? d.size : d.fields[0].size;
        unsigned nfields = d.object ? d.fields.size() : 0;
        B.CreateCall(ArgsFn, {pc, ConstantInt::get(I32, idx), ConstantInt::get(I32, size > 255 ? 255 : size),
                              ptr, table(d), ConstantInt::get(I32, nfields)});
      }
      if (!recorded && !OptKernelAbi)
        B.CreateCall(ArgsFn, {pc, ConstantInt::get(I32, ARG_NONE), ConstantInt::get(I32, 0),
                              ConstantPointerNull::get(Ptr), ConstantPointerNull::get(Ptr),
                              ConstantInt::get(I32, 0)});
    }
    params += "]";

    if (OptRet) {
      Type *RT = F.getReturnType();
      AllocaInst *slot = nullptr;
      for (ReturnInst *R : rets) {
        Value *rv = R->getReturnValue();
        if (!rv && !sret && OptKernelAbi)
          continue; // the kernel: a void function gets no return callback
        Instruction *term = guarded(R, on);
        IRBuilder<> B(term);
        B.SetCurrentDebugLocation(R->getDebugLoc() ? R->getDebugLoc() : loc);
        if (rv) {
          ValueDesc d = describe(retType, RT, DL, false);
          if (!slot)
            slot = newSlot(RT, "kcovdf.ret");
          B.CreateStore(rv, slot);
          uint64_t size = d.object ? d.size : d.fields[0].size;
          B.CreateCall(RetFn, {pc, ConstantInt::get(I32, size > 255 ? 255 : size), slot, table(d),
                               ConstantInt::get(I32, d.object ? d.fields.size() : 0)});
        } else if (sret) {
          ValueDesc d = describe(retType, sret->getType(), DL, true);
          if (!d.indirect)
            d = describe(nullptr, sret->getType(), DL, false);
          uint64_t size = d.object ? d.size : d.fields[0].size;
          Value *ptr = sret;
          if (!d.indirect) {
            AllocaInst *s = newSlot(Ptr, "kcovdf.sret");
            B.CreateStore(sret, s);
            ptr = s;
          }
          B.CreateCall(RetFn, {pc, ConstantInt::get(I32, size > 255 ? 255 : size), ptr, table(d),
                               ConstantInt::get(I32, d.object ? d.fields.size() : 0)});
        } else {
          B.CreateCall(RetFn, {pc, ConstantInt::get(I32, 0), ConstantPointerNull::get(Ptr),
                               ConstantPointerNull::get(Ptr), ConstantInt::get(I32, 0)});
        }
      }
    }
    if (OptKernelAbi)
      return;
    // the sym line (after its pc, which the runtime writes): names for the readers
    std::string qual;
    for (auto *S = SP->getScope(); S; S = S->getScope()) {
      if (auto *NS = dyn_cast<DINamespace>(S)) {
        if (!NS->getName().empty())
          qual = NS->getName().str() + "::" + qual;
      } else if (isa<DIFile>(S) || isa<DICompileUnit>(S)) {
        break;
      } else if (auto *T = dyn_cast<DIType>(S)) {
        if (!T->getName().empty())
          qual = T->getName().str() + "::" + qual;
      }
    }
    qual += SP->getName().str();
    std::string file = SP->getFile() ? SP->getFile()->getFilename().str() : "";
    if (SP->getFile() && !SP->getFile()->getDirectory().empty() && !file.empty() && file[0] != '/')
      file = SP->getFile()->getDirectory().str() + "/" + file;
    Funcs.push_back({&F, "\"qualname\":" + jsonStr(qual) + ",\"file\":" + jsonStr(file) +
                             ",\"line\":" + std::to_string(SP->getLine()) + ",\"params\":" + params +
                             ",\"symbol\":" + jsonStr(F.getName()) + "}"});
  }

  // The module descriptor and the constructor that hands it to the runtime:
  //   { i32 version, i32 nfuncs, ptr [nfuncs x {ptr fn, ptr sym json}], ptr type lines }
  void registerModule() {
    auto str = [&](const std::string &s) -> Constant * {
      auto *C = ConstantDataArray::getString(Ctx, s, true);
      auto *G = new GlobalVariable(M, C->getType(), true, GlobalValue::PrivateLinkage, C, "__kcovdf_str");
      G->setUnnamedAddr(GlobalValue::UnnamedAddr::Global);
      return G;
    };
    auto *Entry = StructType::get(Ctx, {Ptr, Ptr});
    std::vector<Constant *> entries;
    for (auto &fi : Funcs)
      entries.push_back(ConstantStruct::get(Entry, {fi.F, str(fi.json)}));
    auto *AT = ArrayType::get(Entry, entries.size());
    auto *FG = new GlobalVariable(M, AT, true, GlobalValue::PrivateLinkage, ConstantArray::get(AT, entries),
                                  "__kcovdf_funcs");
    std::string lines;
    for (auto &kv : Types)
      lines += kv.second + "\n";
    auto *Desc = StructType::get(Ctx, {I32, I32, Ptr, Ptr});
    auto *DG = new GlobalVariable(M, Desc, true, GlobalValue::PrivateLinkage,
                                  ConstantStruct::get(Desc, {ConstantInt::get(I32, 1),
                                                             ConstantInt::get(I32, entries.size()), FG,
                                                             str(lines)}),
                                  "__kcovdf_module");
    FunctionCallee Reg = M.getOrInsertFunction("__kcovdf_register",
                                      FunctionType::get(Type::getVoidTy(Ctx), {Ptr}, false));
    auto *Ctor = Function::Create(FunctionType::get(Type::getVoidTy(Ctx), false),
                                  GlobalValue::InternalLinkage, "__kcovdf_ctor", M);
    IRBuilder<> B(BasicBlock::Create(Ctx, "", Ctor));
    B.CreateCall(Reg, {DG});
    B.CreateRetVoid();
    appendToGlobalCtors(M, Ctor, 65535);
  }
};

struct KcovdfDataflowPass : PassInfoMixin<KcovdfDataflowPass> {
  PreservedAnalyses run(Module &M, ModuleAnalysisManager &) {
    return Instrumenter(M).run() ? PreservedAnalyses::none() : PreservedAnalyses::all();
  }
  static bool isRequired() { return true; }
};

} // namespace

extern "C" LLVM_ATTRIBUTE_WEAK PassPluginLibraryInfo llvmGetPassPluginInfo() {
  return {LLVM_PLUGIN_API_VERSION, "kcovdf-dataflow", "1", [](PassBuilder &PB) {
            PB.registerPipelineParsingCallback(
                [](StringRef name, ModulePassManager &MPM, ArrayRef<PassBuilder::PipelineElement>) {
                  if (name != "kcovdf-dataflow")
                    return false;
                  MPM.addPass(KcovdfDataflowPass());
                  return true;
                });
          }};
}
