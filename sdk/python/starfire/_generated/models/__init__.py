"""Contains all the data models used in inputs/outputs"""

from .adjustment_create import AdjustmentCreate
from .admin_key_create import AdminKeyCreate
from .admin_key_list import AdminKeyList
from .admin_key_object import AdminKeyObject
from .api_key_create import ApiKeyCreate
from .api_key_list import ApiKeyList
from .api_key_object import ApiKeyObject
from .api_key_update import ApiKeyUpdate
from .assistant_message import AssistantMessage
from .audit_log_list import AuditLogList
from .audit_log_object import AuditLogObject
from .audit_ref import AuditRef
from .balance_object import BalanceObject
from .budget_object import BudgetObject
from .budget_update import BudgetUpdate
from .capacity_price_create import CapacityPriceCreate
from .capacity_price_list import CapacityPriceList
from .capacity_price_object import CapacityPriceObject
from .chat_choice import ChatChoice
from .chat_chunk_choice import ChatChunkChoice
from .chat_completion import ChatCompletion
from .chat_completion_chunk import ChatCompletionChunk
from .chat_completion_request import ChatCompletionRequest
from .chat_completion_request_guided_json_type_0 import (
    ChatCompletionRequestGuidedJsonType0,
)
from .chat_completion_request_logit_bias_type_0 import (
    ChatCompletionRequestLogitBiasType0,
)
from .chat_delta import ChatDelta
from .chat_delta_frame import ChatDeltaFrame
from .chat_done_frame import ChatDoneFrame
from .chat_error_frame import ChatErrorFrame
from .chat_message_in import ChatMessageIn
from .chat_tool import ChatTool
from .choice_logprobs import ChoiceLogprobs
from .completion import Completion
from .completion_choice import CompletionChoice
from .completion_chunk import CompletionChunk
from .completion_chunk_choice import CompletionChunkChoice
from .completion_logprobs import CompletionLogprobs
from .completion_logprobs_top_logprobs_item import CompletionLogprobsTopLogprobsItem
from .completion_request import CompletionRequest
from .completion_request_guided_json_type_0 import CompletionRequestGuidedJsonType0
from .completion_request_logit_bias_type_0 import CompletionRequestLogitBiasType0
from .completions_usage_result import CompletionsUsageResult
from .content_part import ContentPart
from .cost_amount import CostAmount
from .cost_result import CostResult
from .created_admin_key import CreatedAdminKey
from .created_api_key import CreatedApiKey
from .created_invite import CreatedInvite
from .credit_entry_object import CreditEntryObject
from .credits_object import CreditsObject
from .deleted_object import DeletedObject
from .deployment_create import DeploymentCreate
from .deployment_event_list import DeploymentEventList
from .deployment_event_object import DeploymentEventObject
from .deployment_list import DeploymentList
from .deployment_object import DeploymentObject
from .deployment_rejection import DeploymentRejection
from .deployment_state import DeploymentState
from .deployment_update import DeploymentUpdate
from .detokenize_request import DetokenizeRequest
from .detokenize_response import DetokenizeResponse
from .embedding_list import EmbeddingList
from .embedding_object import EmbeddingObject
from .embedding_request import EmbeddingRequest
from .embedding_usage import EmbeddingUsage
from .embeddings_usage_result import EmbeddingsUsageResult
from .error_body import ErrorBody
from .error_object import ErrorObject
from .function_call_delta import FunctionCallDelta
from .function_call_in import FunctionCallIn
from .function_call_object import FunctionCallObject
from .function_definition import FunctionDefinition
from .function_definition_parameters_type_0 import FunctionDefinitionParametersType0
from .health import Health
from .invite_create import InviteCreate
from .invite_list import InviteList
from .invite_object import InviteObject
from .invoice_line_object import InvoiceLineObject
from .invoice_list import InvoiceList
from .invoice_object import InvoiceObject
from .json_schema_format import JsonSchemaFormat
from .json_schema_format_schema_type_0 import JsonSchemaFormatSchemaType0
from .key_limits import KeyLimits
from .key_owner_object import KeyOwnerObject
from .ledger_entry_list import LedgerEntryList
from .ledger_entry_object import LedgerEntryObject
from .login_request import LoginRequest
from .me_object import MeObject
from .model_list import ModelList
from .model_object import ModelObject
from .named_function import NamedFunction
from .named_tool_choice import NamedToolChoice
from .operator_deployment_list import OperatorDeploymentList
from .operator_deployment_object import OperatorDeploymentObject
from .organization_billing import OrganizationBilling
from .organization_summary import OrganizationSummary
from .plan import Plan
from .plan_change import PlanChange
from .price_create import PriceCreate
from .price_list import PriceList
from .price_object import PriceObject
from .project_create import ProjectCreate
from .project_list import ProjectList
from .project_object import ProjectObject
from .project_update import ProjectUpdate
from .prompt_tokens_details import PromptTokensDetails
from .refresh_request import RefreshRequest
from .refund_create import RefundCreate
from .replica_range import ReplicaRange
from .response_format_type_0 import ResponseFormatType0
from .response_format_type_0_type import ResponseFormatType0Type
from .response_format_type_1 import ResponseFormatType1
from .response_format_type_1_type import ResponseFormatType1Type
from .response_format_type_2 import ResponseFormatType2
from .response_format_type_2_type import ResponseFormatType2Type
from .role import Role
from .scope import Scope
from .session_object import SessionObject
from .signup_request import SignupRequest
from .stream_options import StreamOptions
from .stripe_webhook_body import StripeWebhookBody
from .structured_outputs import StructuredOutputs
from .structured_outputs_json_type_0 import StructuredOutputsJsonType0
from .token_logprob_object import TokenLogprobObject
from .tokenize_request import TokenizeRequest
from .tokenize_response import TokenizeResponse
from .tool_call_delta import ToolCallDelta
from .tool_call_in import ToolCallIn
from .tool_call_object import ToolCallObject
from .tool_choice_mode import ToolChoiceMode
from .top_logprob import TopLogprob
from .top_up_create import TopUpCreate
from .top_up_list import TopUpList
from .top_up_object import TopUpObject
from .usage_bucket_completions_usage_result import UsageBucketCompletionsUsageResult
from .usage_bucket_completions_usage_result_results_item import (
    UsageBucketCompletionsUsageResultResultsItem,
)
from .usage_bucket_cost_result import UsageBucketCostResult
from .usage_bucket_cost_result_results_item import UsageBucketCostResultResultsItem
from .usage_bucket_embeddings_usage_result import UsageBucketEmbeddingsUsageResult
from .usage_bucket_embeddings_usage_result_results_item import (
    UsageBucketEmbeddingsUsageResultResultsItem,
)
from .usage_object import UsageObject
from .usage_page_completions_usage_result import UsagePageCompletionsUsageResult
from .usage_page_cost_result import UsagePageCostResult
from .usage_page_embeddings_usage_result import UsagePageEmbeddingsUsageResult
from .user_list import UserList
from .user_object import UserObject
from .user_role_update import UserRoleUpdate
from .user_summary import UserSummary
from .webhook_receipt import WebhookReceipt
from .ws_ticket import WsTicket

__all__ = (
    "AdjustmentCreate",
    "AdminKeyCreate",
    "AdminKeyList",
    "AdminKeyObject",
    "ApiKeyCreate",
    "ApiKeyList",
    "ApiKeyObject",
    "ApiKeyUpdate",
    "AssistantMessage",
    "AuditLogList",
    "AuditLogObject",
    "AuditRef",
    "BalanceObject",
    "BudgetObject",
    "BudgetUpdate",
    "CapacityPriceCreate",
    "CapacityPriceList",
    "CapacityPriceObject",
    "ChatChoice",
    "ChatChunkChoice",
    "ChatCompletion",
    "ChatCompletionChunk",
    "ChatCompletionRequest",
    "ChatCompletionRequestGuidedJsonType0",
    "ChatCompletionRequestLogitBiasType0",
    "ChatDelta",
    "ChatDeltaFrame",
    "ChatDoneFrame",
    "ChatErrorFrame",
    "ChatMessageIn",
    "ChatTool",
    "ChoiceLogprobs",
    "Completion",
    "CompletionChoice",
    "CompletionChunk",
    "CompletionChunkChoice",
    "CompletionLogprobs",
    "CompletionLogprobsTopLogprobsItem",
    "CompletionRequest",
    "CompletionRequestGuidedJsonType0",
    "CompletionRequestLogitBiasType0",
    "CompletionsUsageResult",
    "ContentPart",
    "CostAmount",
    "CostResult",
    "CreatedAdminKey",
    "CreatedApiKey",
    "CreatedInvite",
    "CreditEntryObject",
    "CreditsObject",
    "DeletedObject",
    "DeploymentCreate",
    "DeploymentEventList",
    "DeploymentEventObject",
    "DeploymentList",
    "DeploymentObject",
    "DeploymentRejection",
    "DeploymentState",
    "DeploymentUpdate",
    "DetokenizeRequest",
    "DetokenizeResponse",
    "EmbeddingList",
    "EmbeddingObject",
    "EmbeddingRequest",
    "EmbeddingUsage",
    "EmbeddingsUsageResult",
    "ErrorBody",
    "ErrorObject",
    "FunctionCallDelta",
    "FunctionCallIn",
    "FunctionCallObject",
    "FunctionDefinition",
    "FunctionDefinitionParametersType0",
    "Health",
    "InviteCreate",
    "InviteList",
    "InviteObject",
    "InvoiceLineObject",
    "InvoiceList",
    "InvoiceObject",
    "JsonSchemaFormat",
    "JsonSchemaFormatSchemaType0",
    "KeyLimits",
    "KeyOwnerObject",
    "LedgerEntryList",
    "LedgerEntryObject",
    "LoginRequest",
    "MeObject",
    "ModelList",
    "ModelObject",
    "NamedFunction",
    "NamedToolChoice",
    "OperatorDeploymentList",
    "OperatorDeploymentObject",
    "OrganizationBilling",
    "OrganizationSummary",
    "Plan",
    "PlanChange",
    "PriceCreate",
    "PriceList",
    "PriceObject",
    "ProjectCreate",
    "ProjectList",
    "ProjectObject",
    "ProjectUpdate",
    "PromptTokensDetails",
    "RefreshRequest",
    "RefundCreate",
    "ReplicaRange",
    "ResponseFormatType0",
    "ResponseFormatType0Type",
    "ResponseFormatType1",
    "ResponseFormatType1Type",
    "ResponseFormatType2",
    "ResponseFormatType2Type",
    "Role",
    "Scope",
    "SessionObject",
    "SignupRequest",
    "StreamOptions",
    "StripeWebhookBody",
    "StructuredOutputs",
    "StructuredOutputsJsonType0",
    "TokenLogprobObject",
    "TokenizeRequest",
    "TokenizeResponse",
    "ToolCallDelta",
    "ToolCallIn",
    "ToolCallObject",
    "ToolChoiceMode",
    "TopLogprob",
    "TopUpCreate",
    "TopUpList",
    "TopUpObject",
    "UsageBucketCompletionsUsageResult",
    "UsageBucketCompletionsUsageResultResultsItem",
    "UsageBucketCostResult",
    "UsageBucketCostResultResultsItem",
    "UsageBucketEmbeddingsUsageResult",
    "UsageBucketEmbeddingsUsageResultResultsItem",
    "UsageObject",
    "UsagePageCompletionsUsageResult",
    "UsagePageCostResult",
    "UsagePageEmbeddingsUsageResult",
    "UserList",
    "UserObject",
    "UserRoleUpdate",
    "UserSummary",
    "WebhookReceipt",
    "WsTicket",
)
